-- Single-id bulk calls: each request upgrades the next deployment of the ids file
-- (threads take interleaved ids), so every call does real work until the ids run out.
-- Environment: BENCH_IDS (file), BENCH_PATH, BENCH_TOKEN, BENCH_TENANT, BENCH_FOLDER.
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
  step = tonumber(os.getenv("BENCH_THREADS"))
  next_index = offset + 1
  wrk.method = "POST"
  wrk.path = os.getenv("BENCH_PATH")
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  wrk.headers["X-UiPath-Internal-TenantId"] = os.getenv("BENCH_TENANT")
  wrk.headers["X-UiPath-FolderKey"] = os.getenv("BENCH_FOLDER")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local id = ids[(next_index - 1) % #ids + 1]
  next_index = next_index + step
  return wrk.format(nil, nil, nil, '{"deploymentIds":["' .. id .. '"]}')
end
