from decile.config import load_settings
from decile.service import run
from decile_inference.app import create_app
from decile_inference.settings import InferenceSettings

run(lambda: create_app(load_settings(InferenceSettings)))
