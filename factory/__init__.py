"""factory, a reasoning-data factory; as a library: `generate`, `open_store`, `eval_model`, `eval_benchmarks`
(factory/api.py), imported when first used so that `import factory` stays cheap."""

API = ("generate", "open_store", "eval_model", "eval_benchmarks", "Generated")


def __getattr__(name: str):
    if name in API:
        from factory import api

        return getattr(api, name)
    raise AttributeError(f"module 'factory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
