# mixtrain on a CUDA base with a pinned CUDA torch; every stage is a `mixtrain COMMAND`.
#   docker build -t mixtrain .
#   docker run --rm --gpus all --ipc=host --init --user "$(id -u):$(id -g)" \
#       -v /host/data:/data -v /host/runs:/runs mixtrain train data_dir=/data out_dir=/runs/exp1 trainer=ddp
#   docker run ... mixtrain prepare data=dir data.root=/data/raw data_dir=/data/prepared
#   docker run ... mixtrain export /runs/exp1 --out /runs/exp1/hf        (and generate, evaluate, fit, ...)
# Volumes: /data (raw text and prepared data_dirs), /runs (run directories, exports, reports).
# The user: a non-root `mixtrain` (uid/gid 1000, the first user on most Linux hosts). Pass
# --user "$(id -u):$(id -g)" to write into the volumes as yourself; any uid works (HOME is
# writable by all). MIXTRAIN_UMASK=0002: what every stage writes is group-readable and -writable.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore WANDB_MODE=offline \
    VENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mixtrain
COPY pyproject.toml README.md install.sh ./
COPY mixtrain ./mixtrain
COPY conf ./conf
COPY launch ./launch
COPY examples ./examples
# the same install path as everywhere else; here torch is the CUDA 12.8 build, pinned; the hf and
# eval extras (export, generate, evaluate) and slurm (Hydra's submitit launcher)
RUN TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" EXTRAS=hf,eval,slurm bash install.sh \
    && python -m compileall -q mixtrain
# ubuntu:24.04 ships a user "ubuntu" with uid 1000: replaced by mixtrain's own
RUN (userdel --remove ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid 1000 --user-group --shell /bin/bash mixtrain \
    && chmod 1777 /home/mixtrain \
    && mkdir -p /data /runs && chown mixtrain:mixtrain /data /runs && chmod 2775 /data /runs
ENV HOME=/home/mixtrain MIXTRAIN_UMASK=0002
USER 1000:1000
VOLUME ["/data", "/runs"]
ENTRYPOINT ["mixtrain"]
CMD ["train", "data_dir=/data", "out_dir=/runs/run"]
