-- Workload (a): one hot key over keep-alive connections.
-- The URL comes from the command line; the workspace header is fixed.
-- usage: wrk -s hot.lua URL -- [workspace]
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

wrk.headers["X-Workspace-ID"] = "w1"

function init(args)
   if args[1] then wrk.headers["X-Workspace-ID"] = args[1] end
end

done = report_done
