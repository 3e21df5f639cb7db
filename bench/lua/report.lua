-- Shared done(): prints one machine-readable line the driver parses.
-- Latencies are in microseconds. wrk measures from the moment a request is
-- written on an open connection (closed loop: no coordinated-omission fix).
function report_done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCHJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
      "\"err_connect\":%d,\"err_read\":%d,\"err_write\":%d,\"err_status\":%d,\"err_timeout\":%d," ..
      "\"lat_mean\":%.1f,\"lat_max\":%d,\"p50\":%d,\"p90\":%d,\"p99\":%d,\"p999\":%d}\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max,
      latency:percentile(50.0), latency:percentile(90.0),
      latency:percentile(99.0), latency:percentile(99.9)))
end
