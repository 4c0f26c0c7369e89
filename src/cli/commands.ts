/**
 * Every command's arguments, options and help. This file loads only commander and the option
 * parsers: each action imports its command's module when it runs, so `cnnc --version` loads no
 * compiler, `cnnc check` no ONNX Runtime or sharp, and only `cnnc lsp` the language server.
 */
import type { Command } from 'commander';
import { deviceFlag, positiveIntFlag, seedFlag } from './options.ts';
import type { CompileOptions } from './compile.ts';
import type { CudaInstallOptions } from './cuda.ts';
import type { DoctorOptions } from './doctor.ts';
import type { ExportOptions } from './export.ts';
import type { CheckOptions } from './check.ts';
import type { FmtOptions } from './fmt.ts';
import type { PredictOptions } from './predict.ts';
import type { SummaryOptions } from './summary.ts';
import type { TrainCliOptions } from './train.ts';

export function defineCommands(program: Command): void {
  defineCheck(program);
  defineSummary(program);
  defineTrain(program);
  defineCompile(program);
  defineFmt(program);
  defineLsp(program);
  definePredict(program);
  defineExport(program);
  defineCuda(program);
  defineDoctor(program);
  // --device cuda|auto is checked (and the CUDA libraries found) before any command that has it runs.
  program.hook('preAction', async (_program, command) => {
    const device = command.opts().device;
    if (device === 'cuda' || device === 'auto') await (await import('./cuda.ts')).prepareDevice(command);
  });
}

function defineCheck(program: Command): void {
  program
    .command('check')
    .description('check .cnn files: syntax, names, arguments and every tensor shape')
    .argument('[files...]', '.cnn files to check')
    .option('--json', 'print diagnostics as JSON')
    .option('--list-layers', 'list the layer kinds and their arguments')
    .action(async (files: string[], opts: CheckOptions) => {
      process.exitCode = (await import('./check.ts')).checkCommand(files, opts);
    });
}

function defineSummary(program: Command): void {
  program
    .command('summary')
    .description('print a table of layers: output shape, parameters, MACs, receptive field, and totals')
    .argument('<file>', '.cnn file')
    .option('-m, --model <name>', 'which model of the file (default: all)')
    .option('--json', 'print the summary as JSON')
    .option('--batch <n>', 'batch size for the training-step costs (default: the train section\'s)', positiveIntFlag('--batch'))
    .action(async (file: string, opts: SummaryOptions) => {
      process.exitCode = (await import('./summary.ts')).summaryCommand(file, opts);
    });
}

function defineCompile(program: Command): void {
  program
    .command('compile')
    .description('compile a model to an ONNX inference graph (opset 17), or to a Triton Inference Server model (--triton)')
    .argument('<file>', '.cnn file')
    .option('-m, --model <name>', 'which model of the file (default: the first)')
    .option('-o, --output <path>', 'where to write the .onnx model (with --train: the folder for the training graphs)')
    .option('--weights <file>', 'parameter values: a cnnc checkpoint, an .onnx model (cnnc\'s, or torch.onnx.export\'s, batch norm folded or not) or a .safetensors state dict (PyTorch); matched by name, else by structure (layer order and every shape; all layers must match, see docs/weights.md)')
    .option('--weights-report <file>', 'write the full list of which tensor of --weights went to which parameter')
    .option('--seed <n>', 'seed for initial parameter values (default: the train section\'s seed, else 0)', seedFlag('--seed'))
    .option('--train', 'write the training graphs to the -o directory instead: train_step.onnx, eval.onnx, train_loop.onnx, init.ckpt and train.json')
    .option('--loop-steps <k>', 'with --train: fix the number of steps per train_loop.onnx run (default: any, from the input\'s first dimension)', positiveIntFlag('--loop-steps'))
    .option('--triton <dir>', 'write the model into a Triton model repository instead: DIR/<model>/config.pbtxt, 1/model.onnx and labels.txt (see docs/triton.md)')
    .option('--max-batch <n>', 'with --triton: max_batch_size, the largest batch Triton forms (default 32)', positiveIntFlag('--max-batch'))
    .option('--triton-kind <kind>', 'with --triton: where Triton runs the model: gpu (default), cpu or auto')
    .action(async (file: string, opts: CompileOptions) => {
      process.exitCode = await (await import('./compile.ts')).compileCommand(file, opts);
    });
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function defineTrain(program: Command): void {
  program
    .command('train')
    .description('train a model on a data set (IDX files or class folders of images) with its train { } settings')
    .argument('<file>', '.cnn file')
    .requiredOption('--data <dir>', 'data directory: train-/t10k- IDX files, or class subfolders of images (optionally under train/ and test/)')
    .option('-m, --model <name>', 'which model of the file (default: the first)')
    .option('-o, --out <dir>', 'output directory for checkpoints, train.jsonl and curves.svg (default: runs/<model>)')
    // Train-section overrides stay text: they are checked as the source's lines are (train.ts).
    .option('--epochs <n>', 'override train { epochs }')
    .option('--batch <n>', 'override train { batch }')
    .option('--lr <x>', 'override train { optimizer lr= }')
    .option('--optimizer <kind>', 'override train { optimizer }: sgd, adam or adamw')
    .option('--seed <n>', 'override train { seed }')
    .option('--set <entry>', 'override any train field, written as in the source, e.g. --set "schedule: cosine warmup=1" (repeatable)', collect)
    .option('--device <device>', 'cpu, cuda or auto', deviceFlag('--device'), 'cpu')
    .option('--threads <n>', 'CPU threads for onnxruntime (default: its own choice)')
    .option('--resume', 'continue the run in --out from its last.ckpt, exactly where it stopped')
    .option('--steps-per-call <k>', 'training steps per ONNX Runtime call (the K-step loop graph: the state crosses to the GPU once per K steps), or auto: chosen from the GPU\'s free memory (default: auto on cuda, 1 on cpu; on the cpu any k gives the same result bit for bit)')
    .option('--limit-train <n>', 'use only the first N training samples')
    .option('--limit-test <n>', 'use only the first N test samples')
    .option('--val-split <fraction>', 'class folders without train/ and test/: the part of each class held out for validation (default 0.1; 0: none)')
    .option('--resize', 'resize and convert images whose size or channels differ from the model\'s input (otherwise an error)')
    .option('--init <file>', 'start from pretrained weights: a cnnc checkpoint, an .onnx model or a .safetensors state dict (PyTorch), matched by name, else by structure; a final dense head that differs is initialised as usual (the full match: init-report.txt in --out)')
    .addHelpText('after', '\nCtrl-C stops after the current step (or block of --steps-per-call steps) and saves a checkpoint (--resume continues); a second Ctrl-C aborts.')
    .action(async (file: string, opts: TrainCliOptions) => {
      const result = await (await import('./train.ts')).trainCommand(file, opts);
      if (result.interrupted) process.exitCode = 130;
    });
}

function definePredict(program: Command): void {
  program
    .command('predict')
    .description('classify PNG/JPEG images or IDX files with a trained model, or predict their masks (dense models)')
    .argument('<file>', '.cnn file')
    .argument('<inputs...>', 'PNG or JPEG images, or IDX image files')
    .option('-m, --model <name>', 'which model of the file (default: the first)')
    .option('-w, --weights <ckpt>', 'trained parameters: a cnnc checkpoint, an .onnx file or a .safetensors state dict, matched as compile --weights does (required)')
    .option('-k, --top <k>', 'how many classes to show per input', positiveIntFlag('--top'), 3)
    .option('--json', 'print predictions as JSON')
    .option('--device <device>', 'cpu, cuda or auto', deviceFlag('--device'), 'cpu')
    .option('--threads <n>', 'intra-op threads', positiveIntFlag('--threads'))
    .option('--limit <n>', 'classify at most n inputs (useful with IDX files)', positiveIntFlag('--limit'))
    .option('--resize', 'resize and convert images whose size or channels differ from the model\'s input (a note per image)')
    .option('-o, --output <path>', 'a dense (segmentation) model\'s masks as PNGs, pixel value = class: FILE.png for one input, else a folder (NAME.png per input)')
    .action(async (file: string, inputs: string[], opts: PredictOptions) => {
      await (await import('./predict.ts')).predictCommand(file, inputs, opts);
    });
}

function defineExport(program: Command): void {
  program
    .command('export')
    .description('export the models of a file as a PyTorch package (--torch): model.py, train.py and README.md, for training on GPUs and with torchrun (see docs/pytorch.md)')
    .argument('<file>', '.cnn file')
    .option('-m, --model <name>', 'the model train.py trains (default: the first; model.py has them all)')
    .option('--torch', 'write a PyTorch package (the only target so far, and required)')
    .option('-o, --output <dir>', 'the folder to write: a new or empty one, or one a previous export wrote (its files are replaced unless changed since; other files stay)')
    .action(async (file: string, opts: ExportOptions) => {
      process.exitCode = (await import('./export.ts')).exportCommand(file, opts);
    });
}

function defineFmt(program: Command): void {
  program
    .command('fmt')
    .description('format .cnn files: print the result (one file, or - for stdin), rewrite them (--write), or list those that would change (--check)')
    .argument('<files...>', '.cnn files')
    .option('-w, --write', 'rewrite the files in place (atomically)')
    .option('--check', 'change nothing; exit 1 and list the files whose layout would change')
    .action(async (files: string[], opts: FmtOptions) => {
      process.exitCode = (await import('./fmt.ts')).fmtCommand(files, opts);
    });
}

function defineLsp(program: Command): void {
  program
    .command('lsp')
    .description('run the language server over stdin/stdout (for editors: diagnostics, hovers with shapes, completion, ...)')
    .option('--stdio', 'talk LSP over stdin/stdout (the only transport; accepted for editors that pass it)')
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async () => {
      const { runStdioServer } = await import('../lsp/server.ts');
      runStdioServer();
    });
}

function defineCuda(program: Command): void {
  const cuda = program.command('cuda').description('install ONNX Runtime\'s CUDA provider for --device cuda (see docs/cuda.md)');
  cuda
    .command('install')
    .description('download the CUDA provider of onnxruntime-node\'s ONNX Runtime from the npm registry, check its pinned checksum and put it beside onnxruntime-node\'s library')
    .option('--from <file>', 'install from a tarball fetched beforehand with `npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` (checked the same way)')
    .option('--check', 'install nothing; exit 1 unless the provider is installed, intact and matching onnxruntime-node')
    .action(async (opts: CudaInstallOptions) => {
      process.exitCode = await (await import('./cuda.ts')).cudaInstallCommand(opts);
    });
}

function defineDoctor(program: Command): void {
  program
    .command('doctor')
    .description('say what will run where: onnxruntime-node, the CUDA provider, each CUDA/cuDNN library, the GPUs, and how to fix each problem; exit 1 when --device cuda cannot run')
    .option('--json', 'print the findings as JSON')
    .action(async (opts: DoctorOptions) => {
      process.exitCode = await (await import('./doctor.ts')).doctorCommand(opts);
    });
}
