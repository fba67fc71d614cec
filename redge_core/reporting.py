"""Backend-neutral summaries, tables and plots of the topic-model fits of ``redge demo`` (and of
tutorial 02): each host's ``demo`` module returns rows made by :func:`summarise_fit`; printing and
plotting happen here, once. matplotlib is optional (:func:`plotting_available`)."""

import importlib.util
import sys

import numpy as np

from redge_core import corpus as redge_corpus
from redge_core.topic_models import SCORE_FUNCTION_PARTICLES

# Model names of the rows, with the title of their plot panel.
PANELS = {
    "lda": "LDA: ReinMax vs exact enumeration",
    "codes": "document codes: ReinMax vs RLOO; ProdLDA",
}


#: The panel (and model name of the rows) of the demo's fits that are not a panel's own model:
#: ProdLDA is the continuous counterpart of the discrete codes.
PANEL_OF = {"prodlda": "codes"}


def run_demo(host_name, topic_models, fit, train, held_out, budgets, progress=True, data_parallel=False):
    """The fits of one host's half of ``redge demo``: each topic model of ``topic_models`` (a dict
    from model name to a list of models) fitted by the host's ``fit`` with its model's budget,
    one row per fit (:func:`summarise_fit`).

    :param dict budgets: ``{name: (epochs, max_steps, evaluate_every)}``, ``max_steps`` ``None``
        for whole epochs, ``evaluate_every`` ``None`` to evaluate once per epoch only; a name
        without a budget (or ``None``) is not fitted.
    """
    results = []
    for name, models in topic_models.items():
        if budgets.get(name) is None:
            continue
        epochs, max_steps, evaluate_every = budgets[name]
        for topic_model in models:
            history = fit(
                topic_model,
                train,
                epochs=epochs,
                learning_rate=0.01,
                held_out=held_out,
                progress=progress,
                max_steps=max_steps,
                data_parallel=data_parallel,
                evaluate_every=evaluate_every,
            )
            results.append(summarise_fit(host_name, PANEL_OF.get(name, name), topic_model, history, train))
    return results


def summarise_fit(host_name, model_name, topic_model, history, train, words_shown=8):
    """One result row of a fit: held-out perplexity (``exp`` of minus the last held-out bound per
    token), NPMI coherence on the training corpus, wall-clock, the perplexity curve (at the
    training steps of ``curve_steps``) and the top words of each topic.

    :param str host_name: ``"Pyro"`` or ``"NumPyro"``.
    :param str model_name: the model's key, e.g. ``"lda"`` or ``"codes"``.
    :param topic_model: a fitted topic model of either host (its ``label`` and ``topics()``).
    :param dict history: the history returned by the host's ``fit``, with a held-out bound.
    :param train: the training :class:`~redge_core.corpus.Corpus`.
    """
    topics = topic_model.topics()
    return {
        "host": host_name,
        "model": model_name,
        "fit": topic_model.label,
        "perplexity": float(np.exp(-history["held_out_bound_per_token"][-1])),
        "coherence": float(redge_corpus.npmi_coherence(topics, train).mean()),
        "seconds_per_epoch": float(np.mean(history["seconds"])),
        "seconds": float(np.sum(history["seconds"])),
        "steps": int(np.sum(history["steps"])),
        "seconds_per_step": float(np.sum(history["seconds"]) / max(1, np.sum(history["steps"]))),
        "whole_epochs": bool(history["whole_epochs"]),
        "perplexity_curve": [float(np.exp(-bound)) for bound in history["held_out_bound_per_token"]],
        "curve_steps": [int(steps) for steps in history["held_out_steps"]],
        "top_words": redge_corpus.top_words(topics, train.vocabulary, words_shown),
    }


def print_topic_results(results, topics_shown=8, file=None):
    """Print the rows of :func:`summarise_fit` as a table, then the top words of the fit of lower
    held-out perplexity of each host and model."""
    file = sys.stdout if file is None else file

    def say(line=""):
        print(line, file=file)

    # A fit stopped mid-epoch (--quick, smoke runs) has no time per epoch: its rows give the steps
    # taken and the time per step instead, compilation included.
    whole = all(row.get("whole_epochs", True) for row in results)
    say("\nheld-out perplexity (lower is better; an ELBO bound with the assignments marginalised")
    say("exactly for LDA, Monte Carlo over the codes), NPMI coherence of the top-10 words on the")
    if whole:
        say("training corpus (higher is better), wall-clock per epoch:")
        say(f"  {'host':8s} {'model fit':28s} {'perplexity':>10s} {'NPMI':>7s} {'s/epoch':>8s}")
    else:
        say("training corpus (higher is better), training steps (minibatches; the fits stop before an")
        say("epoch ends) and wall-clock per step (the first step's compilation included):")
        say(f"  {'host':8s} {'model fit':28s} {'perplexity':>10s} {'NPMI':>7s} {'steps':>6s} {'s/step':>7s}")
    for row in results:
        numbers = f"{row['perplexity']:10.1f} {row['coherence']:7.3f} "
        numbers += f"{row['seconds_per_epoch']:8.2f}" if whole else f"{row['steps']:6d} {row['seconds_per_step']:7.3f}"
        say(f"  {row['host']:8s} {row['fit']:28s} {numbers}")
    if any(row["fit"].endswith("[RLOO]") for row in results):
        samples = SCORE_FUNCTION_PARTICLES
        say(f"  (RLOO rows: {samples} samples, so {samples} decoder passes, per document and step)")
    for host_name in dict.fromkeys(row["host"] for row in results):
        for model_name in dict.fromkeys(row["model"] for row in results):
            fits = [row for row in results if row["host"] == host_name and row["model"] == model_name]
            if not fits:
                continue
            best = min(fits, key=lambda row: row["perplexity"] if np.isfinite(row["perplexity"]) else np.inf)
            say(f"\n{host_name} {best['fit']} (the lower held-out perplexity of its model):")
            say(f"top words of {topics_shown} topics")
            for k, words in enumerate(best["top_words"][:topics_shown]):
                say(f"  topic {k:2d}: {' '.join(words)}")


def plotting_available():
    """Whether matplotlib is installed (the plots are optional)."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


def plot_topic_results(results, path):
    """Write the held-out perplexity curves of the rows of :func:`summarise_fit` to ``path``, one
    panel per model, against the training steps (minibatches), one line per host and fit. Draws on
    a standalone figure: pyplot's global backend and state are left as they are (a notebook keeps
    its inline plots)."""
    from matplotlib.figure import Figure

    models = [name for name in PANELS if any(row["model"] == name for row in results)]
    figure = Figure(figsize=(6 * max(len(models), 1), 4.5))
    axes = figure.subplots(1, max(len(models), 1), squeeze=False)[0]
    hosts = list(dict.fromkeys(row["host"] for row in results))
    for axis, name in zip(axes, models, strict=False):
        fits = list(dict.fromkeys(row["fit"] for row in results if row["model"] == name))
        for row in results:
            if row["model"] == name:
                axis.plot(
                    row["curve_steps"],
                    row["perplexity_curve"],
                    marker="o",
                    markersize=3,
                    color=f"C{fits.index(row['fit'])}",
                    linestyle=["-", "--", ":"][hosts.index(row["host"]) % 3],
                    label=f"{row['host']} {row['fit']}",
                )
        axis.set(title=PANELS[name], xlabel="training steps (minibatches)", ylabel="held-out perplexity")
        axis.margins(x=0.05, y=0.1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
