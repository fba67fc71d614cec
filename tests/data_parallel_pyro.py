"""One process of the PyTorch data-parallel test (``tests/test_data_parallel.py`` launches two with
``torchrun``, over gloo). Each process checks, against the single-process computation it also
runs itself, (1) every estimator's gradients for the same noise when each process holds a share of
the minibatch, and (2) ``fit(..., data_parallel=True)``: the parameters after a few Adam steps and
the history. It writes its largest differences to ``<output>.<rank>.json``."""

import json
import os
import sys

import pyro
import torch

from pyro_redge import distributed
from pyro_redge.estimators import AIMLE, GumbelRao, GumbelSoftmax, ReDGE, ReinMax, StraightThrough
from pyro_redge.topic_models import DiscreteCodeTopicModel, fit
from tests.test_data_parallel import small_corpora

ESTIMATORS = [StraightThrough(), GumbelSoftmax(), ReinMax(), ReDGE(), GumbelRao(), AIMLE()]
ROWS, CATEGORIES, FEATURES = 10, 5, 3


def estimator_gradient(estimator, weights, features, noise, rows, scale):
    """The gradient of ``scale * sum_rows |z W' - x|^2`` (z the estimator's hard sample of logits
    ``x W``) for the rows ``rows`` of the minibatch, the noise sliced the same way."""
    weights = weights.detach().requires_grad_()
    mine = [value[..., rows, :] for value in noise]
    sample = estimator.apply(features[rows] @ weights, *mine)
    loss = scale * ((sample @ weights.T - features[rows]) ** 2).sum()
    loss.backward()
    return weights.grad


def main(output):
    torch.set_default_dtype(torch.float64)
    group = distributed.process_group()
    rank, size = distributed.rank(group), distributed.world_size(group)
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(FEATURES, CATEGORIES, generator=generator)
    features = torch.randn(ROWS, FEATURES, generator=generator)
    bounds = [ROWS * part // size for part in range(size + 1)]
    mine = slice(bounds[rank], bounds[rank + 1])
    gradient_differences = {}
    for estimator in ESTIMATORS:
        torch.manual_seed(1)  # the same noise for the whole minibatch in every process
        noise = estimator.sample_noise(features @ weights)
        single = estimator_gradient(estimator, weights, features, noise, slice(None), 1.0)
        with distributed.reduce_statistics(group):
            # Each share's loss counts world_size times: the average over the processes sums them.
            share = estimator_gradient(estimator, weights, features, noise, mine, float(size))
        parameter = share.clone().requires_grad_()
        parameter.grad = share
        distributed.average_gradients([parameter], group)
        gradient_differences[type(estimator).__name__] = float((parameter.grad - single).abs().max())

    # fit: AIMLE at a vanishing noise temperature draws the logits' argmax whatever the noise, so
    # the processes' own noise does not matter and the fit must equal the single-process one; its
    # step size couples the documents through two norms, which the group must reduce.
    corpus, held_out = small_corpora()
    corpus = corpus.subset(range(19))
    results = {}
    for parallel in (True, False):
        topic_model = DiscreteCodeTopicModel(
            corpus.vocabulary_size, 2, 4, AIMLE(temperature=1e-9), hidden_size=8, dtype=torch.float64
        )
        # batch 9 of 19 documents: shares of 4 and 5, then a last minibatch of one document, which
        # every process takes whole (the processes' estimates are averaged).
        history = fit(
            topic_model, corpus, epochs=2, batch_size=9, held_out=held_out, progress=False, data_parallel=parallel
        )
        store = pyro.get_param_store()
        results[parallel] = (history, {name: store[name].detach().clone() for name in store.keys()})
    (parallel_history, parallel_parameters), (single_history, single_parameters) = results[True], results[False]
    mine = torch.cat([parallel_parameters[name].flatten() for name in sorted(parallel_parameters)])
    gathered = [torch.zeros_like(mine) for _ in range(size)]
    torch.distributed.all_gather(gathered, mine)
    report = {
        "gradient_differences": gradient_differences,
        "parameter_difference": max(
            float((parallel_parameters[name] - value).abs().max()) for name, value in single_parameters.items()
        ),
        "parameter_scale": max(float(single_parameters[n].abs().max()) for n in single_parameters),
        "difference_between_processes": max(float((g - gathered[0]).abs().max()) for g in gathered),
        "loss_per_token": [parallel_history["loss_per_token"], single_history["loss_per_token"]],
        "held_out_bound_per_token": [
            parallel_history["held_out_bound_per_token"],
            single_history["held_out_bound_per_token"],
        ],
    }
    with open(f"{output}.{rank}.json", "w") as file:
        json.dump(report, file)
    distributed.finish()


if __name__ == "__main__":
    main(sys.argv[1])
    # Leave without the interpreter's teardown: gloo's worker threads may still hold tensors then,
    # and freeing them while Python finalises aborts the process ("terminate called without an
    # active exception", 1 run in 10 here even after finish(); pytorch/pytorch#179291).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
