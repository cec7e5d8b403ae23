"""The watcher: the only service that watches the Kubernetes API server.

It lists and watches the five LLMSafeSpace kinds and the labelled child objects, and turns
every change into a hint on LSS_EVENTS and every committed Sandbox/WarmPool status into a
retained record on LSS_STATUS. It never writes to Kubernetes.
"""
