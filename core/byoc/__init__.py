"""The SageMaker container contract shared by this project's images.

training   - /opt/ml paths, config files, channels, the failure file
hyperparameters - declarative validation of SageMaker's string hyperparameters
metrics    - log lines that SageMaker metric definitions and tuning jobs read
codecs     - request bodies <-> arrays and predictions, one place per content type
runtime    - the model runtime interface every image implements (load, decode, predict, encode)
serving    - the HTTP app (/ping, /invocations, /execution-parameters) under gunicorn
script_mode, script_serving - a user's SageMaker framework script: trained as a child, served via its handlers
"""
