"""Export torchvision models (random weights) to ONNX with an input and torch's output.

usage: /usr/bin/python3 make_torchvision_models.py OUTDIR SEED [--size S] [NAME ...]
Writes OUTDIR/NAME.onnx, NAME.input.npy, NAME.output.npy for each model. Small inputs
(64x64, a 32x32 ViT) keep the test in seconds; the graphs are the real ones."""
import sys, os
import numpy as np
import warnings
import torch, torchvision
warnings.filterwarnings("ignore")

out, seed = sys.argv[1], int(sys.argv[2])
args = sys.argv[3:]
size = 64
if args[:1] == ["--size"]:
    size, args = int(args[1]), args[2:]
names = args or ["resnet18", "mobilenet_v2", "squeezenet1_0", "efficientnet_b0", "vit_small"]
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)

def make(name):
    if name == "vit_small":
        from torchvision.models.vision_transformer import VisionTransformer
        return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128, num_classes=10), (1, 3, 32, 32)
    return getattr(torchvision.models, name)(), (1, 3, size, size)

for name in names:
    torch.manual_seed(seed)
    m, shape = make(name)
    m.eval()
    # random BatchNorm statistics, so that normalization is exercised
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
        if isinstance(mod, torch.nn.Linear):  # the ViT head starts at zero: make it count
            torch.nn.init.normal_(mod.weight, std=0.2)
    x = torch.randn(*shape)
    with torch.no_grad():
        y = m(x)
    path = os.path.join(out, name + ".onnx")
    # the batch dim is symbolic, so the same file runs at any batch (cgrad onnx bench --batch)
    torch.onnx.export(m, x, path, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    np.save(os.path.join(out, name + ".input.npy"), x.numpy())
    np.save(os.path.join(out, name + ".output.npy"), y.numpy())
    print("exported", name, tuple(y.shape))
