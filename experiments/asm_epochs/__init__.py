"""The ASM pre-training epochs lab (``experiments/asm_epochs/``): SPIN's return, and a linear
probe's accuracy, against how long the Action Structure Model was pre-trained (the SPIN
paper's Figure 2) at a CPU size."""
