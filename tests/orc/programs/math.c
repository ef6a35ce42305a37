/* libm from JIT code: trigonometry, powers, rounding, classification. */
#include <math.h>
#include <stdio.h>

int main(int argc, char **argv) {
    volatile double x = 0.75 + argc;  /* keeps the calls from being folded */
    printf("sin %.9f cos %.9f tan %.9f\n", sin(x), cos(x), tan(x));
    printf("exp %.9f log %.9f log10 %.9f\n", exp(x), log(x), log10(x));
    printf("pow %.9f sqrt %.9f cbrt %.9f hypot %.9f\n", pow(x, 3.5), sqrt(x), cbrt(x), hypot(x, 2));
    printf("floor %.1f ceil %.1f round %.1f trunc %.1f fmod %.6f\n", floor(-x), ceil(-x), round(x),
           trunc(-x), fmod(10.0, x));
    printf("atan2 %.9f erf %.9f lgamma %.9f\n", atan2(x, 1.5), erf(x), lgamma(x));
    printf("isnan %d isinf %d signbit %d\n", isnan(sqrt(-x)) != 0, isinf(1.0 / (x - x)) != 0,
           signbit(-x) != 0);
    printf("argv[0] ends with %s\n", argv[0][0] ? "a name" : "nothing");
    return 0;
}
