-- Bulk calls of BENCH_PER_CALL ids (default 1): each request upgrades the next
-- deployments of the ids file (threads take interleaved runs of ids), so every call
-- does real work until the ids run out.
-- Environment: BENCH_IDS (file), BENCH_PATH, BENCH_TOKEN, BENCH_TENANT, BENCH_FOLDER,
-- BENCH_THREADS (wrk's -t), BENCH_PER_CALL.
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
  step = tonumber(os.getenv("BENCH_THREADS"))
  per_call = tonumber(os.getenv("BENCH_PER_CALL") or "1")
  next_call = offset
  wrk.method = "POST"
  wrk.path = os.getenv("BENCH_PATH")
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  wrk.headers["X-UiPath-Internal-TenantId"] = os.getenv("BENCH_TENANT")
  wrk.headers["X-UiPath-FolderKey"] = os.getenv("BENCH_FOLDER")
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local quoted = {}
  for i = 1, per_call do
    quoted[i] = '"' .. ids[(next_call * per_call + i - 1) % #ids + 1] .. '"'
  end
  next_call = next_call + step
  return wrk.format(nil, nil, nil, '{"deploymentIds":[' .. table.concat(quoted, ",") .. ']}')
end
