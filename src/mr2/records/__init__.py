"""Everything mr2 writes to and reads from run folders, typed: a run's result
(``result``: ``RunResult`` and its parts, the JSON schema), its kept logits (``logits``),
WiSE-FT rows (``wise``), a tuning grid's selection (``selection``), the settings that make a
run what it is (``setting``); the JSON boundary (``typed_json``: records <-> plain JSON) and
atomic files, checksums and safe loading (``storage``)."""
