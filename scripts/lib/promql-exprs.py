"""Reads Grafana dashboards (JSON) and prints a Prometheus rule file with every PromQL
expression of their panels as a recording rule, so that `promtool check rules` parses
them. Grafana's range variables are replaced by a duration first. With --metric-names,
prints instead the catalog_* and discount_* metric names the dashboards and the given
rule files use, one per line, without the _bucket/_count/_sum of histograms.

    python3 promql-exprs.py deploy/grafana/*.json > exprs.yml
    python3 promql-exprs.py --metric-names deploy/grafana/*.json deploy/prometheus/rules.yml
"""

import json
import re
import sys

VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def expressions(dashboard_path):
    with open(dashboard_path, encoding="utf-8") as f:
        dashboard = json.load(f)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            yield panel["title"], expr


def main():
    args = sys.argv[1:]
    if args and args[0] == "--metric-names":
        names = set()
        for path in args[1:]:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            # Label names are not metrics: drop grouping clauses, legends and matchers.
            text = re.sub(r"\b(by|without)\s*\([^)]*\)|\{\{[^}]*\}\}", "", text)
            names.update(re.findall(r"\b((?:catalog|discount)_[a-z_]+)\b(?!\s*[=!]~?)", text))
        for name in sorted({re.sub(r"_(bucket|count|sum)$", "", name) for name in names}):
            print(name)
        return
    print("groups:\n  - name: dashboard-expressions\n    rules:")
    for n, (title, expr) in enumerate(e for path in args for e in expressions(path)):
        print(f"      - record: dashboard:expr_{n}  # {title}")
        print(f"        expr: {json.dumps(expr)}")


if __name__ == "__main__":
    main()
