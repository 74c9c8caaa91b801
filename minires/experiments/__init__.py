"""The experiments: why residual networks train, measured on small nets, one module each.

    flow         gradient norms per layer at initialisation, plain vs residual (He et al. 2016)
    degradation  plain vs residual training curves over seeds (He et al. 2015, Figure 6)
    responses    std of every 3x3 layer's response (Figure 7)
    lesion       deleting blocks at test time (Veit et al. 2016, Fig. 3 and 5)
    paths        gradient by path length (Veit et al. 2016, Fig. 6)
    landscape    the loss around trained nets, filter-normalised directions (Li et al. 2018)
    identity     shortcut variants and BN/ReLU orders (He et al. 2016, Tables 1 and 2)
    shatter      the autocorrelation of dy/dx against depth (Balduzzi et al. 2017)
    signal       signal propagation at initialisation, with and without BN (Brock et al. 2021)
    normfree     training deep ResNets without BN: none, SkipInit, Fixup (De and Smith 2020)
    rank         the rank of a batch's representations, block by block (Daneshmand et al. 2020)
    sharpness    the loss's largest Hessian eigenvalue, and the edge of stability (Cohen et al.)

Each has the same parts in the same order: ``measure`` (arrays in, numbers out), ``plot``, a
table, and ``run(out, ...)``, which writes the run folder and returns the report it wrote as JSON.
The foundations they share, instead of importing each other: ``nets`` (the trained nets and their
recipe), ``surgery`` (blocks, swapping modules, measuring without side effects), ``probes``
(gradients at every layer, through hooks) and ``output`` (the run folder and its files).
"""
