-- A GET with uplift's headers. Environment: BENCH_TOKEN, BENCH_TENANT, BENCH_FOLDER.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.headers["X-UiPath-Internal-TenantId"] = os.getenv("BENCH_TENANT")
wrk.headers["X-UiPath-FolderKey"] = os.getenv("BENCH_FOLDER")
