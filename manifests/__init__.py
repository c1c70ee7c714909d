

# The one version string of rescue: both CLIs and the manifest's `builder` field use it.
__version__ = "0.1.0"
