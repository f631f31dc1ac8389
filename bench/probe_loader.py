"""Does AOTI package loading work on this GPU machine? (torch 2.11 + CUDA 13 segfaulted.)

Compiles a tiny Linear for CUDA, then in fresh processes: (1) aoti_load_package,
(2) the extracted .so through AOTIModelContainerRunnerCuda. Prints each exit code.
"""
import glob, os, subprocess, sys, tempfile, zipfile

import torch

folder = tempfile.mkdtemp()
path = os.path.join(folder, "linear.pt2")
if sys.argv[1:] == ["package"]:
    f = torch._inductor.aoti_load_package(sys.argv[0].replace("probe_loader.py", "") and os.environ["PKG"])
    print("package ok", f(torch.ones(2, 64, device="cuda")).sum().item())
    sys.exit(0)
if sys.argv[1:] == ["runner"]:
    out = tempfile.mkdtemp()
    zipfile.ZipFile(os.environ["PKG"]).extractall(out)
    so = glob.glob(os.path.join(out, "**", "*.so"), recursive=True)[0]
    runner = torch._C._aoti.AOTIModelContainerRunnerCuda(so, 1, "cuda:0", os.path.dirname(so))
    print("runner ok", runner.run([torch.ones(2, 64, device="cuda")])[0].sum().item())
    sys.exit(0)
model = torch.nn.Linear(64, 64).cuda()
program = torch.export.export(model, (torch.ones(2, 64, device="cuda"),))
torch._inductor.aoti_compile_and_package(program, package_path=path)
for mode in ("package", "runner"):
    done = subprocess.run([sys.executable, "-X", "faulthandler", __file__, mode], env={**os.environ, "PKG": path},
                          capture_output=True, text=True)
    print(mode, "exit", done.returncode, (done.stdout + done.stderr).strip().splitlines()[-3:])
