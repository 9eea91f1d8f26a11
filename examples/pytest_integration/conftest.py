# Enables the togai-engine pytest plugin for this project (only a top-level conftest.py may do this; the
# alternative is `-p togai_engine.testing` on the command line or in the pytest configuration's addopts).
pytest_plugins = ["togai_engine.testing"]
