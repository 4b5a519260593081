"""A vai_q_pytorch quantization tutorial script (the shape of Vitis AI's `resnet18_quant.py`) on the
digits data. The only line that differs from its vai_q_pytorch form is the import of torch_quantizer.

    python digits_quant.py --quant_mode calib                  # calibrate: quantize_result/quant_info.json
    python digits_quant.py --quant_mode test                   # evaluate the quantized model
    python digits_quant.py --quant_mode test --deploy          # + xmodel, TorchScript and ONNX
"""

import argparse
import os

import torch
from tqdm import tqdm

from fixflow.quantizer import torch_quantizer          # vai_q_pytorch: from pytorch_nndct.apis import torch_quantizer
from fixflow.zoo import get_model, load_digits

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

parser = argparse.ArgumentParser()
parser.add_argument("--model_dir", default=None, help="directory of digits_cnn.pth (default: the bundled weights)")
parser.add_argument("--output_dir", default="quantize_result", help="where the quantizer writes its results")
parser.add_argument("--config_file", default=None, help="quantization configuration file")
parser.add_argument("--subset_len", default=None, type=int, help="evaluate on the first N images only")
parser.add_argument("--batch_size", default=32, type=int, help="input data batch size")
parser.add_argument("--quant_mode", default="calib", choices=["float", "calib", "test"],
                    help="float: no quantization; calib: calibrate; test: evaluate the quantized model")
parser.add_argument("--fast_finetune", dest="fast_finetune", action="store_true", help="fast finetune before calib")
parser.add_argument("--deploy", dest="deploy", action="store_true", help="export xmodel, TorchScript and ONNX")
parser.add_argument("--target", dest="target", nargs="?", const="", help="DPU target (DPUCZDX8G only)")
args, _ = parser.parse_known_args()


def load_data(train=True, batch_size=32, subset_len=None):
    """Digits images at 28x28 (the model's input size), pixels in 0..1, as a DataLoader."""
    x, y = load_digits("train" if train else "test", size=28)
    if subset_len:
        x, y = x[:subset_len], y[:subset_len]
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False), dataset


class AverageMeter:
    """Computes and stores the average and current value."""

    def __init__(self, name, fmt=":f"):
        self.name, self.fmt = name, fmt
        self.sum = self.count = self.avg = 0.0

    def update(self, val, n=1):
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def accuracy(output, target, topk=(1,)):
    """The accuracy over the k top predictions, for each k."""
    with torch.no_grad():
        maxk = max(topk)
        _, pred = output.topk(maxk, 1, True, True)
        correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
        return [correct[:k].reshape(-1).float().sum(0) * 100.0 / target.size(0) for k in topk]


def evaluate(model, val_loader, loss_fn):
    model.eval()
    model = model.to(device)
    top1, top5 = AverageMeter("Acc@1", ":6.2f"), AverageMeter("Acc@5", ":6.2f")
    total, loss_sum = 0, 0.0
    for images, labels in tqdm(val_loader, total=len(val_loader)):
        images, labels = images.to(device), labels.to(device)
        outputs = model(images)
        loss_sum += loss_fn(outputs, labels).item()
        total += images.size(0)
        acc1, acc5 = accuracy(outputs, labels, topk=(1, 5))
        top1.update(acc1.item(), images.size(0))
        top5.update(acc5.item(), images.size(0))
    return top1.avg, top5.avg, loss_sum / total


def quantization(title="optimize", model_name="", file_path=""):
    quant_mode, deploy, batch_size = args.quant_mode, args.deploy, args.batch_size
    if quant_mode != "test" and deploy:
        deploy = False
        print("Warning: exporting the xmodel needs quant_mode test; deploy is turned off in this run")
    model = get_model(model_name).cpu()
    if file_path and os.path.exists(file_path):
        model.load_state_dict(torch.load(file_path, map_location="cpu"))
    input = torch.randn([batch_size, 1, 28, 28])
    if quant_mode == "float":
        quant_model = model
    else:
        quantizer = torch_quantizer(quant_mode, model, (input), output_dir=args.output_dir, device=device,
                                    quant_config_file=args.config_file, target=args.target)
        quant_model = quantizer.quant_model

    loss_fn = torch.nn.CrossEntropyLoss().to(device)
    val_loader, _ = load_data(train=False, batch_size=batch_size, subset_len=args.subset_len)
    if args.fast_finetune:
        ft_loader, _ = load_data(train=True, batch_size=batch_size, subset_len=512)
        if quant_mode == "calib":
            quantizer.fast_finetune(evaluate, (quant_model, ft_loader, loss_fn))
        elif quant_mode == "test":
            quantizer.load_ft_param()

    acc1, acc5, loss = evaluate(quant_model, val_loader, loss_fn)
    print("loss: %g" % loss)
    print("top-1 / top-5 accuracy: %g / %g" % (acc1, acc5))

    if quant_mode == "calib":
        quantizer.export_quant_config()
    if deploy:
        quantizer.export_torch_script(output_dir=args.output_dir)
        quantizer.export_onnx_model(output_dir=args.output_dir)
        quantizer.export_xmodel(output_dir=args.output_dir, deploy_check=False)


if __name__ == "__main__":
    model_name = "digits_cnn"
    file_path = os.path.join(args.model_dir, model_name + ".pth") if args.model_dir else ""
    feature_test = " float model evaluation" if args.quant_mode == "float" else " quantization"
    print("-------- Start {} test ".format(model_name))
    quantization(title=model_name + feature_test, model_name=model_name, file_path=file_path)
    print("-------- End of {} test ".format(model_name))
