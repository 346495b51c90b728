"""Pure renderers: topology -> configuration text (nft ruleset, dnsmasq conf, QEMU args)."""
