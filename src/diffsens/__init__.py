"""diffsens: how deep networks lose spatial information with training, measured layer by layer.

Modules: ``diffeo`` (max-entropy diffeomorphisms), ``perturb`` (matched noise, pixel moves),
``probes`` (recording named layers), ``sensitivity`` (D, G, R estimators), ``models``
(architecture registry), ``data`` (datasets), ``train`` (resumable training), ``pooling``
(channel shuffle, Laplacian spectra), ``theory`` (constant-filter model), ``fits`` (depth laws),
``cubes`` (NetCDF cubes and provenance), ``plots`` (figures), ``cli`` (the ``diffsens`` command).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diffsens")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
