"""The NumPyro half of ``redge demo`` (the command itself is :func:`pyro_redge.cli.main`): the
same topic models, estimators and budgets, fitted by jitted NumPyro SVI on JAX's default device."""

import jax


def topic_model_demo(train, held_out, num_topics, budgets, progress=True):
    """Fit LDA (ReinMax vs TraceEnum_ELBO) and the discrete-code model (ReinMax vs
    TraceGraph_ELBO) to ``train`` with NumPyro; return one result dict per fit (see
    :func:`pyro_redge.cli.summarise_fit`)."""
    from numpyro_redge import ReinMax
    from numpyro_redge.topic_models import LDA, DiscreteCodeTopicModel, fit
    from pyro_redge.cli import summarise_fit

    results = []
    with jax.enable_x64(True):  # LDA computes in float64 (see LDA)
        for name, make in [
            ("lda", lambda estimator: LDA(train.vocabulary_size, num_topics, estimator)),
            ("codes", lambda estimator: DiscreteCodeTopicModel(train.vocabulary_size, 4, 8, estimator)),
        ]:
            for estimator in (ReinMax(), None):
                topic_model = make(estimator)
                epochs, max_steps = budgets[name]
                history = fit(topic_model, train, epochs=epochs, learning_rate=0.01, held_out=held_out, progress=progress, max_steps=max_steps)
                results.append(summarise_fit("NumPyro", name, topic_model, history, train))
    return results
