from decile.config import load_settings
from decile.service import run
from decile_feature.app import create_app
from decile_feature.settings import FeatureSettings

run(lambda: create_app(load_settings(FeatureSettings)))
