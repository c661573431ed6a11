"""Models that ship with the launcher; each is an example of the `launcher.model_api` contract."""
