#!/usr/bin/python3
# Writes vgate's Grafana dashboards (dashboards/*.json) from the panel lists below: one place for the
# layout, the datasource variable and the query conventions. Run it after changing a panel:
#   python3 docker/grafana/make_dashboards.py
# The JSON files are committed; tests/integration/metrics_live_test.cc runs every panel's queries against a
# real Prometheus scraping a real vgated.
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
I = 'instance=~"$instance"'


def datasource_variable():
    # A datasource variable, not ${DS_PROMETHEUS} __inputs: file provisioning never fills __inputs.
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def query_variable(name, label, query, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query, "query": {"query": query, "refId": name},
            "refresh": 2, "includeAll": True, "multi": multi, "allValue": ".*", "current": {},
            "sort": 1, "hide": 0, "options": [], "regex": ""}


def panel(title, targets, unit="short", kind="timeseries", width=12, height=8, description="", stack=False):
    refs = "ABCDEFGHIJ"
    p = {"type": kind, "title": title, "description": description, "datasource": DS,
         "targets": [{"datasource": DS, "expr": expr, "legendFormat": legend, "refId": refs[i],
                      "instant": kind in ("table", "stat"), "range": kind not in ("table", "stat")}
                     for i, (expr, legend) in enumerate(targets)],
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "gridPos": {"w": width, "h": height}}
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                   "stacking": {"mode": "normal" if stack else "none"}}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    elif kind == "table":
        p["transformations"] = [{"id": "labelsToFields", "options": {}}]
        p["options"] = {"showHeader": True}
    return p


def rate(metric, selector=""):
    sel = I + ("," + selector if selector else "")
    return 'rate(%s{%s}[$__rate_interval])' % (metric, sel)


def dashboard(uid, title, description, panels, variables=()):
    x = y = 0
    row_height = 0
    for i, p in enumerate(panels):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        p["gridPos"].update({"x": x, "y": y})
        p["id"] = i + 1
        x += w
        row_height = max(row_height, h)
    return {"uid": uid, "title": title, "description": description, "tags": ["vgate"], "editable": True,
            "schemaVersion": 38, "version": 1, "timezone": "", "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"}, "graphTooltip": 1, "links": [
                {"title": "vgate", "type": "dashboards", "tags": ["vgate"], "asDropdown": True}],
            "templating": {"list": [datasource_variable(),
                                    query_variable("instance", "vgated", "label_values(vgate_build_info, instance)"),
                                    *variables]},
            "annotations": {"list": []}, "panels": panels}


overview = dashboard("vgate-overview", "vgate / Overview", "Flows, verdicts, paths and drops of every vgated.", [
    panel("Flows ended by verdict", [("sum by (verdict) (%s)" % rate("vgate_flows_processed_total"), "{{verdict}}")],
          "ops", stack=True,
          description="vgate_flows_processed_total: flows counted when they end, by the verdict they had."),
    panel("Flows ended by protocol", [("sum by (protocol) (%s)" % rate("vgate_flows_processed_total"), "{{protocol}}")],
          "ops", stack=True),
    panel("Active flows", [("sum by (instance) (vgate_flows_active{%s})" % I, "{{instance}}")], "short", width=8),
    panel("Packets by path", [("sum by (path) (%s)" % rate("vgate_packets_total"), "{{path}}")], "pps", width=8,
          description="fast: redirected by the BPF fast path; slow: through a DPDK worker."),
    panel("Traffic by path", [("sum by (path) (%s)" % rate("vgate_bytes_total"), "{{path}}")], "Bps", width=8,
          description="fast bytes are counted when a worker reads an offloaded flow back (every 5 s, and at its end)."),
    panel("Fast path share of packets", [
        ('sum(%s) / sum(%s)' % (rate("vgate_packets_total", 'path="fast"'), rate("vgate_packets_total")), "fast")],
        "percentunit", kind="stat", width=6),
    panel("Drops by reason", [("sum by (reason) (%s)" % rate("vgate_drop_total"), "{{reason}}")], "pps", width=18,
          stack=True),
    panel("Flows ended by reason", [("sum by (reason) (%s)" % rate("vgate_flows_ended_total"), "{{reason}}")],
          "ops", stack=True),
    panel("Verdicts by action", [("sum by (action) (%s)" % rate("vgate_policy_verdicts_total"), "{{action}}")],
          "ops", stack=True),
    panel("vgated builds", [("vgate_build_info{%s}" % I, "{{instance}} {{version}}")], kind="table", width=24,
          height=5),
])

containers = dashboard("vgate-containers", "vgate / Containers", "Traffic and verdicts per protected container.", [
    panel("Packets sent (egress) by container",
          [("sum by (container) (%s)" % rate("vgate_container_packets_total", 'container=~"$container",direction="egress"'),
            "{{container}}")], "pps"),
    panel("Packets received (ingress) by container",
          [("sum by (container) (%s)" % rate("vgate_container_packets_total", 'container=~"$container",direction="ingress"'),
            "{{container}}")], "pps"),
    panel("Traffic by container and direction",
          [("sum by (container, direction) (%s)" % rate("vgate_container_bytes_total", 'container=~"$container"'),
            "{{container}} {{direction}}")], "Bps"),
    panel("Traffic by container and verdict",
          [("sum by (container, verdict) (%s)" % rate("vgate_container_bytes_total", 'container=~"$container"'),
            "{{container}} {{verdict}}")], "Bps"),
    panel("Denied packets by container",
          [("sum by (container) (%s)" % rate("vgate_container_packets_total", 'container=~"$container",verdict=~"deny|reject"'),
            "{{container}}")], "pps",
          description="Packets of flows whose verdict was deny or reject (dropped in enforce mode)."),
    panel("Top 10 containers by traffic",
          [("topk(10, sum by (container) (%s))" % rate("vgate_container_bytes_total", 'container=~"$container"'),
            "{{container}}")], "Bps", kind="table"),
], variables=[query_variable("container", "Container",
                             'label_values(vgate_container_packets_total{instance=~"$instance"}, container)')])

policy = dashboard("vgate-policy", "vgate / Policy", "The policy in force, its verdicts by rule, and its compiles.", [
    panel("Policy in force", [("vgate_policy_info{%s}" % I, "{{name}} v{{version}} {{mode}}")], kind="table",
          width=12, height=5),
    panel("Rules", [("vgate_policy_rules{%s}" % I, "{{instance}}")], kind="stat", width=4, height=5),
    panel("Mean compile time", [("vgate_policy_compile_seconds_sum{%s} / vgate_policy_compile_seconds_count{%s}" % (I, I),
                                 "{{instance}}")], "s", kind="stat", width=4, height=5),
    panel("Policy applies", [("sum by (result) (vgate_policy_apply_total{%s})" % I, "{{result}}")], kind="stat",
          width=4, height=5),
    panel("Verdicts by rule", [("sum by (rule, action) (%s)" % rate("vgate_policy_verdicts_total"),
                                "{{rule}} ({{action}})")], "ops", width=24),
    panel("Verdicts by what decided", [("sum by (match) (%s)" % rate("vgate_policy_verdicts_total"), "{{match}}")],
          "ops", width=8, description="l3-l4: addresses, ports, protocol; tls, quic: the ClientHello; http: the request."),
    panel("Verdicts by direction", [("sum by (direction, action) (%s)" % rate("vgate_policy_verdicts_total"),
                                     "{{direction}} {{action}}")], "ops", width=8),
    panel("Compile time, 90th percentile",
          [("histogram_quantile(0.9, sum by (le) (%s))" % rate("vgate_policy_compile_seconds_bucket"), "p90")], "s",
          width=8),
    panel("Control requests", [("sum by (verb, status) (%s)" % rate("vgate_control_requests_total"),
                                "{{verb}} {{status}}")], "reqps", width=24),
])

health = dashboard("vgate-dataplane", "vgate / Dataplane health", "Workers, fast path maps, rings, flow log, parsing and inspection.", [
    panel("Worker busy ratio", [('vgate_worker_busy_ratio{%s,worker=~"$worker"}' % I, "worker {{worker}}")],
          "percentunit", width=8, description="Share of the poll loop's time in rounds that received packets, between scrapes."),
    panel("Workers busy (over the window)", [
        ("sum by (instance) (%s) / (sum by (instance) (%s) + sum by (instance) (%s))" % (
            rate("vgate_lane_busy_time_seconds_total"), rate("vgate_lane_busy_time_seconds_total"),
            rate("vgate_lane_idle_time_seconds_total")), "{{instance}}")], "percentunit", width=8),
    panel("Fast path map pressure", [("vgate_fastpath_map_pressure{%s}" % I, "{{map}}")], "percentunit", width=8,
          description="entries / max_entries of the pinned BPF maps (recounted every 10 s)."),
    panel("Record ring occupancy", [('vgate_record_ring_occupancy_ratio{%s,worker=~"$worker"}' % I, "worker {{worker}}")],
          "percentunit", width=8),
    panel("Flow log records", [("sum by (result) (%s)" % rate("vgate_flow_log_records_total"), "{{result}}")], "ops",
          width=8),
    panel("Flow records lost by cause", [("sum by (cause) (%s)" % rate("vgate_flow_log_records_lost_total"), "{{cause}}")],
          "ops", width=8),
    panel("Fast path program", [
        ("sum(%s)" % rate("vgate_fastpath_hits_total"), "hits"),
        ("sum(%s)" % rate("vgate_fastpath_to_slow_path_total"), "to slow path"),
        ("sum(%s)" % rate("vgate_fastpath_from_slow_path_total"), "from slow path"),
        ("sum(%s)" % rate("vgate_fastpath_not_flow_total"), "not a flow")], "pps"),
    panel("Flow table", [
        ("sum(vgate_flows_active{%s})" % I, "active"),
        ("sum(%s)" % rate("vgate_worker_flows_created_total"), "created/s"),
        ("sum(%s)" % rate("vgate_worker_flows_evicted_total"), "evicted/s"),
        ("sum(%s)" % rate("vgate_worker_flow_insert_failed_total"), "insert failed/s")], "short"),
    panel("Packets parsed by result", [("sum by (result) (%s)" % rate("vgate_packets_parsed_total"), "{{result}}")],
          "pps", stack=True),
    panel("L7 inspection", [
        ("sum(%s)" % rate("vgate_inspection_started_total"), "inspected flows"),
        ("sum(%s)" % rate("vgate_inspection_tls_client_hellos_total"), "TLS ClientHellos"),
        ("sum(%s)" % rate("vgate_inspection_quic_client_hellos_total"), "QUIC ClientHellos"),
        ("sum(%s)" % rate("vgate_inspection_http_requests_total"), "HTTP requests"),
        ("sum(%s) + sum(%s) + sum(%s)" % (rate("vgate_inspection_tls_client_hello_errors_total"),
                                          rate("vgate_inspection_http_errors_total"),
                                          rate("vgate_inspection_quic_decrypt_failures_total")), "errors"),
        ("sum(%s)" % rate("vgate_inspection_pool_exhausted_total"), "no slot")], "ops"),
    panel("Slow path lanes", [
        ("sum(%s)" % rate("vgate_lane_tx_dropped_total"), "tx dropped"),
        ("sum(%s)" % rate("vgate_lane_untagged_total"), "untagged"),
        ("sum(%s)" % rate("vgate_lane_offload_write_failures_total"), "offload write failures")], "pps"),
], variables=[query_variable("worker", "Worker", 'label_values(vgate_worker_busy_ratio{instance=~"$instance"}, worker)')])

here = os.path.dirname(os.path.abspath(__file__))
for name, board in (("overview", overview), ("containers", containers), ("policy", policy),
                    ("dataplane-health", health)):
    with open(os.path.join(here, "dashboards", "vgate-%s.json" % name), "w") as out:
        json.dump(board, out, indent=2)
        out.write("\n")
