from .adversarial import (BlurDownsample, GANLoss, LeCamRegularizer, PatchGANDiscriminator,
                          adaptive_gan_weight, hinge_d_loss, hinge_g_loss)
from .perceptual import ConvNeXtPerceptualLoss, LPIPSLoss, MissingWeightsError

__all__ = ['ConvNeXtPerceptualLoss', 'LPIPSLoss', 'MissingWeightsError', 'PatchGANDiscriminator',
           'BlurDownsample', 'GANLoss', 'LeCamRegularizer', 'hinge_d_loss', 'hinge_g_loss',
           'adaptive_gan_weight']
