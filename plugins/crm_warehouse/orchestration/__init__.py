"""What the DAG files share: default arguments, windows from the run, Assets of the raw tables."""
