"""The benchmark sections, in report order. Each module is one section and holds all of it:

    NAME                 its key in the results (results["sections"][NAME], params[NAME])
    TITLE                its heading
    params(quick, profiles) -> dict    what to run: --quick (the CI smoke mode) or a full run
    measure(params) -> dict            run inside the namespace the driver made for it
    tables(result) -> [Table]          what is printed and written to latest.md
    targets(result) -> [dict]          report.target() rows
    sanity(result) -> [str]            what must hold in any run (the smoke test asserts it)
  optional:
    peers(params) -> int               extra namespaces it needs (params["peers"]: their names)
    skip_reason(params) -> str | None  why not to run it here
    top_level(result) -> dict          fields of the results outside the section

Adding one: write the module, add it to SECTIONS."""

from bench.sections import boot_lease, cold_apply, dataplane, forwards_scale, hooks, libvirt, multihost, noop_reapply, scale, taps_scale, watch

SECTIONS = [cold_apply, noop_reapply, forwards_scale, taps_scale, hooks, dataplane, watch, libvirt, scale, multihost, boot_lease]
BY_NAME = {s.NAME: s for s in SECTIONS}
