from decile.config import load_settings
from decile.service import run
from decile_recorder.app import create_app
from decile_recorder.settings import RecorderSettings

run(lambda: create_app(load_settings(RecorderSettings)))
