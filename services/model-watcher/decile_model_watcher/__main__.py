from decile.config import load_settings
from decile.service import run
from decile_model_watcher.app import create_app
from decile_model_watcher.settings import ModelWatcherSettings

run(lambda: create_app(load_settings(ModelWatcherSettings)))
