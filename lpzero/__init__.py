"""lpzero: search, fitness, caching, export and the CLI.

Data flows one way: `benchmarks` (architectures, models, the six inputs) ->
`lpzero.cache` (sampled inputs and baseline values on disk) -> `lpzero.fitness`
(Spearman rho of a tree's scores) -> `lpzero.toolbox` / `lpzero.evolve` (DEAP
search with RPS) -> `lpzero.experiment` / `lpzero.export` (reports, formulas).
"""
