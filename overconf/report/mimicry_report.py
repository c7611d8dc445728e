"""summary.md's mimicry section of an audit (overconf.runner.audit.mimicry): the shadow and reference
models' train / test accuracy and loss next to the target's, from the rows only."""
from __future__ import annotations

from .tables import Table, markdown_table, ordered


def _with_sd(t: Table, key: tuple, metric: str, split: str) -> str:
    mean, sd = t.fmt(*key, split, metric), t.get(*key, split, f"{metric}_sd")
    return f"{mean} ± {sd[0]:.3f}" if len(sd) == 1 else mean


def mimicry_section(rows: list[dict]) -> str:
    """The section (empty when the rows hold no mimicry check: not an audit)."""
    t = Table(rows)
    cells = [(m, s) for m in ordered(rows, "model") for s in ordered(rows, "setting")
             if t.get(m, s, "-", "mimicry", "tolerance_accuracy")]
    if not cells:
        return ""
    out = ["## Mimicry: do the shadow and reference models train like the target?", "",
           "Reference-model attacks assume models trained like the target (architecture, recipe, training-set "
           "size). Accuracy and mean cross-entropy on each model's own training data and on held-out data; "
           "reference models: mean ± sd over the K models, each on the reference points it trained on and on the "
           "others. 'no': a mean differs from the target's by more than the tolerance (see the warnings).", ""]
    for m, s in cells:
        key = (m, s, "-")
        tol = f"accuracy ±{t.fmt(*key, 'mimicry', 'tolerance_accuracy')}, loss ±{t.fmt(*key, 'mimicry', 'tolerance_loss')}"
        verdict = {True: "yes", False: "**no**"}
        body = [["target", t.fmt(*key, "train", "train_size", digits=0), t.fmt(*key, "train", "accuracy"),
                 t.fmt(*key, "test", "accuracy"), t.fmt(*key, "train", "loss"), t.fmt(*key, "test", "loss"), "-"],
                ["shadow", t.fmt(*key, "train", "shadow_train_size", digits=0), t.fmt(*key, "train", "shadow_accuracy"),
                 t.fmt(*key, "test", "shadow_accuracy"), t.fmt(*key, "train", "shadow_loss"),
                 t.fmt(*key, "test", "shadow_loss"), verdict[t.get(*key, "mimicry", "shadow_mismatch") == [0.0]]]]
        if t.get(*key, "mimicry", "reference_mismatch"):
            body.append(["reference models", t.fmt(*key, "train", "reference_train_size", digits=0)]
                        + [_with_sd(t, key, metric, split) for metric in ("reference_accuracy", "reference_loss")
                           for split in ("train", "test")]  # train acc, test acc, train loss, test loss
                        + [verdict[t.get(*key, "mimicry", "reference_mismatch") == [0.0]]])
        out += [f"### {m} / {s} (tolerance: {tol})", "",
                markdown_table(["model", "trained on", "train acc", "test acc", "train loss", "test loss",
                                "within tolerance"], body), ""]
    return "\n".join(out) + "\n"
