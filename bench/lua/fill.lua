-- Fills a cache with a fixed set of keys, each requested exactly once, then exits.
-- usage: wrk -s fill.lua URL -- zipf            (all 50,000 keys of keys.lua)
--        wrk -s fill.lua URL -- purge BOARD N   (N entries sharing one board tag)
--        wrk -s fill.lua URL -- contacts N      (N contact details, ~20 KB each)
-- Use one wrk thread (-t 1); the connection count sets the concurrency.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "keys.lua")

local mode, board, n
local sent, filled, bad = 0, 0, 0

-- The first request() of a Lua state, and every one after all keys are
-- sent, is an idle request: a path no server caches, answered 404 and not
-- counted by the origin. So no key is asked twice, and it does not matter
-- whether wrk's pre-run check of request() (which it does not send) runs in
-- this state or another one.
local idle
local first = true

function init(args)
   idle = nil  -- rebuilt with the Host header wrk sets before init()
   mode = args[1] or "zipf"
   if mode == "purge" then
      board = args[2]
      n = tonumber(args[3])
   elseif mode == "contacts" then
      n = tonumber(args[2])
   else
      n = keys.N
   end
end

local function idle_request()
   idle = idle or wrk.format("GET", "/__fill_idle")
   return idle
end

function request()
   if first or sent >= n then
      first = false
      return idle_request()
   end
   local i = sent
   sent = sent + 1
   if mode == "purge" then
      return keys.purge_request(board, i)
   elseif mode == "contacts" then
      return keys.contact_request(i)
   end
   return keys.list_request(i)
end

function response(status, headers, body)
   if status == 404 then
      return  -- an idle request
   end
   filled = filled + 1
   if status ~= 200 then bad = bad + 1 end
   if filled >= n then
      -- wrk's main thread sleeps for the whole -d duration even after the
      -- worker stops, so end the process here; the driver times the fill.
      io.write(string.format("FILLJSON {\"received\":%d,\"non200\":%d}\n", filled, bad))
      io.stdout:flush()
      os.exit(0)
   end
end
