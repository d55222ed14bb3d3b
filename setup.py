"""Packaging for musenet-hf: MuseNet for the Hugging Face ecosystem."""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
BUNDLED = "musenet-small-music21"
# What from_pretrained reads; the training log, curve and README stay in the repository.
BUNDLED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer_config.json",
                 "vocabulary.json")


class BuildWithBundledModel(build_py):
    """Copy the bundled checkpoint into the built package (``musenet_hf/bundled/<name>``), so that a
    wheel install generates without the repository; an editable install reads ``checkpoints/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # `pip install -e .` reads checkpoints/ in place
        source = HERE / "checkpoints" / BUNDLED
        if not (source / "model.safetensors").is_file():
            raise SystemExit(f"{source}/model.safetensors is missing: a wheel must carry the bundled model")
        target = Path(self.build_lib) / "musenet_hf" / "bundled" / BUNDLED
        self.mkpath(str(target))
        for name in BUNDLED_FILES:
            self.copy_file(str(source / name), str(target / name))

setup(
    name="musenet-hf",
    version="0.1.0",
    description="MuseNet (OpenAI, 2019) as a Transformers model: MIDI tokenizer, sparse-attention model, training and generation.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    py_modules=["musenet_cli"],  # the `musenet` command's entry point: parses before the package's heavy import
    package_data={"musenet_hf": ["resources/*.json"]},
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0",
        "accelerate>=1.0",
        "tokenizers>=0.20",
        "datasets>=3.0",
        "mido>=1.3",
        "numpy>=1.24",
        "tqdm>=4.60",
        "safetensors>=0.4",
        "pyyaml>=6.0",
    ],
    extras_require={
        # xformers wheels are built against one torch release: install it to match your torch.
        "xformers": ["xformers>=0.0.28"],
        "fast": ["symusic>=0.5"],
        "corpus": ["music21>=9.0"],
        "audio": ["matplotlib>=3.7"],
        "peft": ["peft>=0.10"],
        "eval": ["scikit-learn>=1.3"],
        # `musenet demo` and `musenet embeddings-plot`; selenium drives Debian's chromium in the browser tests.
        "demo": ["gradio>=6.0", "gradio_client>=2.0", "matplotlib>=3.7", "scikit-learn>=1.3", "selenium>=4.10"],
        "dev": [
            "pytest>=8.0",
            "pytest-timeout>=2.2",
            "symusic>=0.5",
            "music21>=9.0",
            "matplotlib>=3.7",
            "peft>=0.10",
            "scikit-learn>=1.3",
            # the xformers backend's bias objects (tests/test_attention.py); its kernels need a matching CUDA torch
            "xformers>=0.0.28",
        ],
    },
    cmdclass={"build_py": BuildWithBundledModel},
    entry_points={"console_scripts": ["musenet=musenet_cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: MIDI",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
