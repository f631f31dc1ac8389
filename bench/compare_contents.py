"""Is each lowering's artifact the stock one? Compares the .ptd named blobs (size, sha256) and
CudaBackend's weight table (FQN, storage key, bytes, dtype, device, offset, sizes, strides)
written by bench/executorch_cuda.py into OUT/contents/.

    python3 bench/compare_contents.py OUT/contents
"""
import json
import sys
from pathlib import Path

folder = Path(sys.argv[1])
variants = {path.name.split(".")[0]: json.loads(path.read_text()) for path in sorted(folder.glob("*.contents.json"))}
stock = variants.pop("stock")
for name, contents in variants.items():
    blobs = "equal" if contents["ptd"] == stock["ptd"] else "DIFFERENT"
    table = "equal" if contents["weights"] == stock["weights"] else "DIFFERENT"
    print(f"{name} vs stock: .ptd blobs {blobs} ({len(contents['ptd'])} blobs), weight table {table} "
          f"({len(contents['weights'])} constants)")
    for key in sorted(set(contents["ptd"]) ^ set(stock["ptd"]))[:5]:
        print(f"  only in one of them: {key}")
