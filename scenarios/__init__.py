"""The scenarios shipped with fieldlearn, as package data: `python -m fieldlearn.sim NAME` runs `NAME.yaml` from here
(`python -m fieldlearn.sim --list` lists them)."""
