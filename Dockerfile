# mixtrain on a CUDA base with a pinned CUDA torch.
#   docker build -t mixtrain .
#   docker run --gpus all --ipc=host -v /host/data:/data -v /host/runs:/runs mixtrain \
#       data_dir=/data out_dir=/runs/exp1 trainer=ddp model=small
# Volumes: /data (prepared data_dir, or where prepare writes), /runs (run directories).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 WANDB_MODE=offline \
    VENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mixtrain
COPY pyproject.toml README.md install.sh ./
COPY mixtrain ./mixtrain
COPY conf ./conf
COPY launch ./launch
# the same install path as everywhere else; here torch is the CUDA 12.8 build, pinned
RUN TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" EXTRAS=slurm bash install.sh
VOLUME ["/data", "/runs"]
ENTRYPOINT ["python", "-m", "mixtrain.train"]
CMD ["data_dir=/data", "out_dir=/runs/run"]
