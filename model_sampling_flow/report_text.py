"""The inspector's report as text for a terminal (what `python -m model_sampling_flow inspect` prints).

Everything taken from the file (names, metadata, paths) goes through `printable`, so a crafted
checkpoint cannot move the cursor or recolour the terminal. Standard library only.
"""
from .sidecar import shallow


def printable(text, limit=None):
    """`text` with every character that could move the cursor or change the terminal escaped
    (control characters, line/paragraph separators, bidi and other format characters)."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def format_report(report):
    """Human-readable multi-line text of a Report (what the CLI prints); metadata is escaped."""
    facts, verdict = report.facts, report.verdict

    def size(n):
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1000
    lines = [f"file            {printable(facts.path)}",
             f"size            {size(facts.file_bytes)} (header {size(facts.header_bytes)}, "
             f"{facts.tensor_count} tensors)",
             f"kind            {facts.kind}",
             f"architecture    {facts.architecture}" + (f" ({facts.layout} key layout)" if facts.layout else ""),
             f"components      {', '.join(facts.components) or '-'}"]
    if facts.in_channels is not None:
        lines.append(f"latent channels {facts.latent_channels}"
                     + (f" (UNet input {facts.in_channels})" if facts.in_channels != facts.latent_channels else ""))
    lines.append(f"v_pred / ztsnr  {'yes' if facts.v_pred else 'no'} / {'yes' if facts.ztsnr else 'no'}"
                 + ("   EDM marker present" if facts.edm else ""))
    if facts.a1111_yaml:
        lines.append(f"A1111 config    {printable(facts.a1111_yaml)}")
    lines.append(f"trainer         {facts.trainer or 'unknown'}")
    for key, value in sorted(facts.modelspec.items()) + sorted(facts.trainer_metadata.items()):
        lines.append(f"  {printable(key, 80)} = {printable(value, 100)}")
    if facts.scheduler:
        lines.append("scheduler       " + printable(", ".join(f"{k}={v}" for k, v in shallow(facts.scheduler).items()),
                                                  200))
    if facts.sidecar is not None:
        lines.append(f"sidecar         {printable(facts.sidecar_path)}")
    lines.append(f"rectified flow  {'YES' if verdict.is_rf else 'no'}: {printable(verdict.reason, 400)}")
    if verdict.is_rf:
        s = verdict.settings
        lines.append(f"recommended     shift {s['shift']:g}, timestep mapping {s['timestep_mapping']}, "
                     f"shift mode {s['shift_mode']}")
        lines.append(f"                ({printable(verdict.settings_note, 300)})")
        if verdict.source == "hint":
            lines.append("                not marked: confirm with the model card, then mark it with "
                         "`python -m model_sampling_flow mark FILE` (writes these settings)")
    for warning in verdict.warnings:
        lines.append(f"warning: {printable(warning, 400)}")
    return "\n".join(lines)
