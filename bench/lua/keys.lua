-- The key spaces shared by the Zipf and fill scripts.
-- Contact lists: 50 workspaces x 10 boards x 10 filters x 10 pages = 50,000 keys
-- (~2 KB each). Contact details: /api/contacts/c{i} (~20 KB each).
keys = {}

keys.WORKSPACES = 50
keys.BOARDS = 10
keys.PAGES = 10
keys.FILTERS = { "all", "open", "closed", "unassigned", "assigned_to_me",
                 "high_priority", "medium_priority", "low_priority",
                 "favorites", "archived" }
keys.N = keys.WORKSPACES * keys.BOARDS * #keys.FILTERS * keys.PAGES

-- The request for key index i (0-based) of the Zipf key space.
function keys.list_request(i)
   local ws = i % keys.WORKSPACES
   local rest = math.floor(i / keys.WORKSPACES)
   local board = rest % keys.BOARDS
   rest = math.floor(rest / keys.BOARDS)
   local filter = keys.FILTERS[(rest % #keys.FILTERS) + 1]
   rest = math.floor(rest / #keys.FILTERS)
   local page = (rest % keys.PAGES) + 1
   local path = string.format("/api/boards/b%d/contacts?page=%d&pageSize=50&filter=%s",
                              board, page, filter)
   return wrk.format("GET", path, { ["X-Workspace-ID"] = "w" .. ws })
end

-- The request for entry i (0-based) of a purge set: N distinct keys on one
-- board of one workspace, so one tag covers them all. Small pages (10
-- contacts, ~0.5 KB) keep 100k entries well inside every cache's 256 MiB.
function keys.purge_request(board, i)
   local path = string.format("/api/boards/%s/contacts?page=%d&pageSize=10&filter=all",
                              board, i + 1)
   return wrk.format("GET", path, { ["X-Workspace-ID"] = "wpurge" })
end

-- The request for contact i (0-based): /api/contacts/c{i}, spread over the
-- same 50 workspaces (~20 KB each, so 20,000 of them offer ~400 MB).
function keys.contact_request(i)
   return wrk.format("GET", string.format("/api/contacts/c%d", i),
                     { ["X-Workspace-ID"] = "w" .. (i % keys.WORKSPACES) })
end
