wrk.method = "POST"
wrk.body = '{"common_name":"svc.bench.example.com"}'
wrk.headers["X-Vault-Token"] = "root"
wrk.headers["Content-Type"] = "application/json"
