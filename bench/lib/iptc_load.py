"""Load N DNAT rules (and one MASQUERADE) into the legacy nat table with python-iptables, in ONE
commit, then exit; prints the in-process split as JSON on stdout.

    python bench/lib/iptc_load.py RULES.tsv
RULES.tsv: "masquerade SUBNET" on the first line, then one DNAT rule per line: proto, host address,
host port, guest address, guest port.
python-iptables writes legacy xtables only (iptables-legacy -t nat -S shows its rules).
"""

import json
import sys
import time

t0 = time.perf_counter()
import iptc  # noqa: E402

t1 = time.perf_counter()
table = iptc.Table(iptc.Table.NAT)
table.autocommit = False
pre = iptc.Chain(table, "PREROUTING")
post = iptc.Chain(table, "POSTROUTING")
with open(sys.argv[1]) as f:
    rows = [line.split() for line in f if line.strip()]
subnet = rows.pop(0)[1]
for proto, haddr, hport, gaddr, gport in rows:
    rule = iptc.Rule()
    rule.protocol = proto
    rule.dst = haddr
    match = rule.create_match(proto)
    match.dport = hport
    target = rule.create_target("DNAT")
    target.to_destination = f"{gaddr}:{gport}"
    pre.append_rule(rule)
masq = iptc.Rule()
masq.src = subnet
masq.dst = "!" + subnet
masq.create_target("MASQUERADE")
post.append_rule(masq)
t2 = time.perf_counter()
table.commit()
table.autocommit = True
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "commit_s": t3 - t2, "rules": len(rows) + 1}))
