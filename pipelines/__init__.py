"""pipelines: declarative end-to-end runs (generate -> pretrain -> policy x seeds -> report),
executed locally or on a Ray cluster. The pipeline files (``*.yaml``) live beside this module."""
