-- Workload (b): a Zipf mix over the 50,000 contact-list keys of keys.lua.
-- usage: wrk -s zipf.lua URL -- [s=1.0] [seed=42]
-- Rank r (1 = most popular) is drawn with probability proportional to 1/r^s
-- and mapped to a key index by a fixed permutation, so popular keys are spread
-- over workspaces, boards, filters and pages. All requests are built in init().
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
dofile(here .. "keys.lua")

local cdf = {}
local reqs = {}
local N = keys.N

function init(args)
   local s = tonumber(args[1] or "1.0")
   local seed = tonumber(args[2] or "42")
   local total = 0
   for r = 1, N do
      total = total + 1 / (r ^ s)
      cdf[r] = total
   end
   for r = 1, N do cdf[r] = cdf[r] / total end
   for r = 1, N do
      -- 7919 is prime and coprime with 50,000: a bijection of 0..N-1.
      reqs[r] = keys.list_request(((r - 1) * 7919 + 12345) % N)
   end
   math.randomseed(seed)
end

function request()
   local u = math.random()
   local lo, hi = 1, N
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
   end
   return reqs[lo]
end

done = report_done
