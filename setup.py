"""keras-dcgan: the DCGAN of Radford et al. (2015) as a Keras 3 / TensorFlow package."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"', (HERE / "keras_dcgan" / "__init__.py").read_text()
).group(1)

setup(
    name="keras-dcgan",
    version=VERSION,
    description="Paper-faithful DCGAN (Radford et al. 2015) for Keras 3 on TensorFlow: "
    "model.fit on one or many devices, TF Serving export, Colab notebooks.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_dcgan", "keras_dcgan.*"]),
    # The explorer page (dcgan serve, dcgan explore): plain HTML, CSS and JavaScript.
    package_data={"keras_dcgan.serving.explorer": ["*.html", "*.js", "*.css"]},
    install_requires=[
        # Keras 3 on the TensorFlow backend (not tf_keras); TF 2.21 is what is tested.
        "tensorflow==2.21.*",
        "keras>=3.15,<4",
        "tensorboard>=2.20",
        "tensorflow-datasets>=4.9",
        "absl-py>=2.1",
        "numpy>=1.26",
        "pillow>=10",
        "lmdb>=1.4",
        "scikit-learn>=1.4",
        "tqdm>=4.60",  # dcgan dedup's progress bar (rate and ETA)
        # Serving: the warm-up file and the gRPC client/server use TF Serving's protos.
        "tensorflow-serving-api==2.21.*",
        "grpcio>=1.60",
    ],
    extras_require={
        "notebooks": ["jupyter"],  # the notebooks need no more than the package and Jupyter
        # nbclient/nbformat/ipykernel: tests/test_notebooks.py executes every notebook.
        # selenium: tests/test_explorer.py drives headless Chromium (Debian's chromium and
        # chromium-driver, which .ci/run installs; without them that test is skipped).
        "dev": [
            "pytest>=8",
            "ruff>=0.6",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "selenium>=4.10",
        ],  # fmt: skip
    },
    entry_points={"console_scripts": ["dcgan=keras_dcgan.cli.main:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
