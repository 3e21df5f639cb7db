-- Replays a trace file once, in order: one request per line `workspace path`,
-- then exits with one line REPLAYJSON {...} (answers, non-200, body bytes,
-- answers that said X-Cache-Status: HIT).
-- usage: wrk -t 1 -s replay.lua URL -- TRACE_FILE
-- One wrk thread, so the requests leave in the file's order (answers on
-- different connections may come back in another order).
local lines = {}
local n, sent, received, bad, bytes, hits = 0, 0, 0, 0, 0, 0

-- As in fill.lua: the first request() of a Lua state, and every one after the
-- last line, is an idle request (a path no server caches, answered 404 and not
-- counted by the origin), so no line is sent twice.
local idle
local first = true

function init(args)
   idle = nil
   for line in io.lines(args[1]) do
      n = n + 1
      lines[n] = line
   end
end

function request()
   if first or sent >= n then
      first = false
      idle = idle or wrk.format("GET", "/__replay_idle")
      return idle
   end
   sent = sent + 1
   local ws, path = lines[sent]:match("^(%S+) (%S+)$")
   return wrk.format("GET", path, { ["X-Workspace-ID"] = ws })
end

function response(status, headers, body)
   if status == 404 then
      return -- an idle request
   end
   received = received + 1
   if status ~= 200 then bad = bad + 1 end
   bytes = bytes + #body
   local cs = headers["X-Cache-Status"] or headers["x-cache-status"]
   if cs and cs:upper() == "HIT" then hits = hits + 1 end
   if received >= n then
      io.write(string.format("REPLAYJSON {\"received\":%d,\"non200\":%d,\"bytes\":%d,\"hits\":%d}\n",
                             received, bad, bytes, hits))
      io.stdout:flush()
      os.exit(0)
   end
end
