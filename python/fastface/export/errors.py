"""Exceptions of :mod:`fastface.export`. All derive from :class:`ExportError` (a RuntimeError),
so ``fastface export`` turns them into exit code 2; a violated parity gate exits with 1."""
from __future__ import annotations


class ExportError(RuntimeError):
    """An export could not be done: bad source, bad options, converter or file-system trouble."""


class StateDictMismatch(ExportError):
    """The weights do not fit the backbone: ``missing``, ``unexpected`` and ``mismatched`` keys
    (the last as ``(key, shape in file, shape in model)``)."""

    def __init__(self, backbone: str, missing, unexpected, mismatched):
        self.backbone = backbone
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)
        lines = [f"the state dict does not match backbone {backbone!r}:"]
        for title, keys in (("missing keys", self.missing), ("unexpected keys", self.unexpected)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
                lines.append(f"  {len(keys)} {title}: {shown}")
        if self.mismatched:
            shown = ", ".join(f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched[:8])
            lines.append(f"  {len(self.mismatched)} shape mismatches (file vs model): {shown}")
        lines.append("  (check --backbone, --embedding-size and --input-size)")
        super().__init__("\n".join(lines))


class PnnxError(ExportError):
    """pnnx is missing or failed; ``log`` holds what it printed."""

    def __init__(self, message: str, log: str = ""):
        self.log = log
        tail = "\n".join(log.strip().splitlines()[-40:])
        super().__init__(message + (f"\n--- pnnx log (last lines) ---\n{tail}" if tail else ""))


class ParityError(ExportError):
    """The converted model does not reproduce the source model; ``report`` is the
    :class:`fastface.export.parity.ParityReport` (``str(report)`` lists the worst inputs)."""

    def __init__(self, report):
        self.report = report
        super().__init__(f"parity gate failed:\n{report}")
