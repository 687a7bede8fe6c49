"""The paper's analysis tools (Radford et al. 2015, sections 5 and 6).

- `latent_walks`: interpolation between latents named by seeds (Fig. 4), linear and spherical.
- `arithmetic`: vector arithmetic on averaged exemplar latents and "turn" directions (Fig. 7, 8).
- `features`: discriminator features as a classifier (max-pooled conv layers + L2-SVM, sec. 5.1).
- `guided_backprop`: guided backpropagation of D's last-layer features (Fig. 5).
- `ablation`: "forgetting to draw" objects by dropping G feature maps of any hidden layer
  (sec. 6.3.1).
- `neighbours`: memorisation check, each sample beside its nearest training images in pixel
  and D-feature space (streamed, running top-k).
"""
