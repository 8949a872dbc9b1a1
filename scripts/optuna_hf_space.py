"""An Optuna study over an `hf:` space with a found proxy as its objective: a proxy used from another NAS tool.

`lpzero nas` searches a space with NSGA-II; any other search can use a proxy the same way, through
`lpzero.workflows.score.score_model` (one model, one mini-batch, the score: higher = better). Here
Optuna's TPE sampler proposes configs of an `hf:SPACE.yaml` (docs/concepts.md, README "Any
transformers family"), invalid combinations are pruned with transformers' reason, and each trial is
a model with random weights scored by the proxy. Needs the optional extra: `pip install -e ".[optuna]"`.

    python scripts/optuna_hf_space.py --space my_space.yaml --proxy runs/gpt2/best.json --trials 30 \
        --max-params 2e6
"""
from __future__ import annotations

import click

from lpzero.benchmarks import get_space
from lpzero.workflows.score import score_model


@click.command()
@click.option("--space", "space_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="An hf: space file (model_type or base, tokenizer, choices).")
@click.option("--proxy", required=True, help="A found proxy (best.json or its folder) or a hand-designed proxy's name.")
@click.option("--trials", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--max-params", type=float, default=None, help="Prune candidates with more parameters.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="The sampler's and the models' seed.")
def main(space_file: str, proxy: str, trials: int, max_params: float | None, batch_size: int, seq_len: int,
         seed: int) -> None:
    """Run the study and print the best config and its score."""
    try:
        import optuna
    except ImportError:
        raise click.ClickException('this example needs Optuna: pip install -e ".[optuna]"') from None
    space = get_space(f"hf:{space_file}")
    tokenizer = space.base_benchmark().tokenizer

    def objective(trial: "optuna.Trial") -> float:
        config = {key: trial.suggest_categorical(key, values) for key, values in space.genes}
        reason = space.invalid(config)
        if reason is not None:
            raise optuna.TrialPruned(reason)
        if max_params is not None and space.count_params(config)["total"] > max_params:
            raise optuna.TrialPruned(f"over {max_params:,.0f} parameters")
        return score_model(space.build_model(config, seed), tokenizer, proxy, batch_size=batch_size,
                           seq_len=seq_len, seed=seed)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    click.echo(f"best score {best.value:.6g}: {space.describe(best.params)} "
               f"({space.count_params(best.params)['total']:,} parameters; {len(study.trials)} trials)")


if __name__ == "__main__":
    main()
