"""The DPU compiler's passes: partition a `fix` module into DPU and CPU subgraphs, lower DPU subgraphs
to DPUCZDX8G instructions (tiling into the banks, instruction selection, fusion), allocate banks and
DDR, and set the dependency flags."""
