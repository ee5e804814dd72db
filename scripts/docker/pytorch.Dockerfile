# llem/pytorch: PyTorch + transformers for the pytorch worker.
# pytorch/pytorch holds torch and CUDA but not transformers; this adds it and
# the libraries the worker's config fields reach (accelerate for device_map /
# max_memory, bitsandbytes for load_in_4bit/8bit, peft for lora, nvidia-ml-py).
# Nothing of llem is installed: llem-exec mounts the worker sources (embedded in
# the binary) read-only at /llem/worker and the model cache at /llem/model-cache.
# Build: scripts/docker/build.sh pytorch
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
RUN pip install --no-cache-dir \
      "transformers==4.46.3" "accelerate==1.1.1" "bitsandbytes==0.44.1" \
      "peft==0.13.2" "safetensors>=0.4.5" "nvidia-ml-py==12.560.30"
ENV HF_HOME=/llem/model-cache PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["python3", "/llem/worker/run_worker.py"]
CMD ["pytorch"]
