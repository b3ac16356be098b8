#!/usr/bin/env bash
# The seed's system test (11 checks) against a running HCP: scripts/system-test.sh [URL]
# The API key comes from HCP_API_KEY, else from var/demo-keys.json (HCP_VAR_DIR overrides var).
set -uo pipefail

URL="${1:-${HCP_URL:-http://127.0.0.1:${HCP_PORT:-8080}}}"
URL="${URL%/}"
KEYS_FILE="${HCP_VAR_DIR:-var}/demo-keys.json"
KEY="${HCP_API_KEY:-}"
if [[ -z "$KEY" && -f "$KEYS_FILE" ]]; then
    KEY="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["customer"])' "$KEYS_FILE")"
fi
if [[ -z "$KEY" ]]; then
    echo "system-test: no API key; set HCP_API_KEY or run 'hcp up' to create $KEYS_FILE" >&2
    exit 2
fi

passed=0
failed=0
BODY="$(mktemp)"
trap 'rm -f "$BODY"' EXIT

# check NAME CURL-ARGS... -- PYTHON-ASSERTION (on `b`, the parsed JSON body, or `t`, the text)
check() {
    local name="$1"; shift
    local args=()
    while [[ "$1" != "--" ]]; do args+=("$1"); shift; done
    shift
    local assertion="$1"
    printf 'Testing %s... ' "$name"
    local status
    status="$(curl -sS -o "$BODY" -w '%{http_code}' -H "Authorization: Bearer $KEY" "${args[@]}" 2>/dev/null)"
    if python3 - "$BODY" "$status" "$assertion" <<'PY' 2>/dev/null
import json, sys
path, status, assertion = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = open(path).read()
try:
    b = json.loads(t)
except ValueError:
    b = None
if not eval(assertion, {"b": b, "t": t, "status": status}):
    sys.exit(1)
PY
    then
        echo "✓ PASS"; passed=$((passed + 1))
    else
        echo "✗ FAIL (HTTP $status: $(head -c 200 "$BODY"))"; failed=$((failed + 1))
    fi
}

echo "HCP System Test Suite against $URL"
echo "=================================="
echo
echo "1. Components"
check "Platform Health" "$URL/health" -- 'status == 200 and b["status"] == "ok"'
check "Database" "$URL/health" -- 'b["components"]["database"] == "ok" and b["components"]["schema"] == "ok"'
check "Market Feed" "$URL/health" -- 'b["components"]["market"] == "ok"'
check "Readiness" "$URL/ready" -- 'status == 200 and b["status"] == "ready"'
check "Prometheus Exposition" "$URL/metrics" -- 'status == 200 and "# TYPE hcp_http_requests_total counter" in t'
echo
echo "2. API Endpoints"
check "Workload Submission" -X POST "$URL/api/v1/workloads" -H "Content-Type: application/json" \
    -d '{"workload_type": "ai_inference_realtime", "priority": 1, "requirements": {"gpu_type": "H100", "gpu_count": 1}}' \
    -- 'status == 201 and b["status"] == "queued" and len(b["workload_id"]) > 0 and b["queue_position"] >= 1'
check "Price Retrieval" "$URL/api/v1/prices/current" \
    -- 'status == 200 and all(isinstance(b["prices"][k]["value"], (int, float)) for k in ("electricity", "btc", "gpu_spot", "hashprice"))'
check "Profitability Calculation" -X POST "$URL/api/v1/profitability/calculate" -H "Content-Type: application/json" \
    -d '{"resource_type": "GPU", "workload_type": "ai_inference_realtime", "power_draw_w": 700}' \
    -- 'status == 200 and abs(b["expected_revenue"] - b["estimated_cost"] - b["net_profit"]) < 1e-9 and b["recommendation"] in ("allocate", "defer")'
# The workload just submitted is either still queued or already placed on a GPU.
check "Queue Depth" "$URL/api/v1/queue/depth" \
    -- 'status == 200 and set(b["by_priority"]) == {"1", "2", "3"} and b["total_depth"] == sum(b["by_priority"].values()) and (b["total_depth"] >= 1 or b["utilization_pct"] > 0)'
echo
echo "3. Metrics"
check "API Metrics" "$URL/metrics" \
    -- '"hcp_http_requests_total{method=\"POST\",route=\"/api/v1/workloads\",status=\"201\"}" in t'
check "Market Metrics" "$URL/metrics" \
    -- 'all(m in t for m in ("hcp_market_electricity_usd_per_mwh ", "hcp_market_hashprice_usd_per_th_day ", "hcp_queue_depth{"))'

echo
echo "=================================="
echo "Passed: $passed"
echo "Failed: $failed"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
