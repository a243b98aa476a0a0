# Shared steps of the one-call GPU scripts (gpu_paper_scale.sh, gpu_toy.sh); sourced, not run.

# Exit 2 unless ROOT holds the CIFAR-10 JPEG copy (archive or unpacked), before any run starts.
need_cifar10_jpeg() {
  if [ ! -f "$1/cifar10-jpeg.tar.gz" ] && [ ! -d "$1/cifar10-jpeg" ]; then
    echo "no cifar10-jpeg.tar.gz (or cifar10-jpeg/) in $1: copy it there and carry the folder" >&2
    exit 2
  fi
}

# The card, its memory and driver into OUT/gpu.txt (and the console).
record_gpu() {
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"; } \
    | tee "$1/gpu.txt"
}

# Decode the JPEG copy in ROOT (archive or folder) into the cache once, before parallel runs would
# race to do it.
decode_cifar10_jpeg() {
  "$1" -c "import ammix.data as D; [D.load_dataset('cifar10-jpeg', '$2', train=t) for t in (True, False)]"
}
