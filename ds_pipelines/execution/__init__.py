"""Running notebooks through Dagster: the runner behind ``ds-pipelines run``, kernels started early, the
dagstermill bridge, and the Dagster instance. Kept free of imports here: ``kernels`` must load before Dagster."""
