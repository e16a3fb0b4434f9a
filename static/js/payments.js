// Cards and card authentication with Stripe.js, loaded by the page from the configured URL
// (Stripe's own in production, localstripe's stand-in in development and tests).
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function stripeOrError(key, errors) {
    if (typeof window.Stripe !== "function") {
      errors.textContent = "The card form could not load (Stripe.js is unreachable). Try again later.";
      return null;
    }
    return window.Stripe(key);
  }

  // Add a card: ask the portal for a SetupIntent, confirm it with the typed card, then post its id.
  function cardForm(form) {
    const errors = form.querySelector("#card-errors");
    const button = form.querySelector("#card-submit");
    const stripe = stripeOrError(form.dataset.publishableKey, errors);
    if (!stripe) {
      button.disabled = true;
      return;
    }
    const card = stripe.elements().create("card");
    card.mount("#card-element");
    let attempt = 0;

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      button.disabled = true;
      errors.textContent = "";
      attempt += 1; // a new SetupIntent after a decline: Stripe keeps a declined one's answer
      try {
        const response = await fetch(form.dataset.setupUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken() },
          body: new URLSearchParams({ key: form.dataset.key + "-" + attempt }),
        });
        const answer = await response.json().catch(function () { return {}; });
        if (!response.ok || !answer.client_secret) {
          throw new Error(answer.error || "The card could not be saved. Try again.");
        }
        const result = await stripe.confirmCardSetup(answer.client_secret, { payment_method: { card: card } });
        if (result.error) {
          throw new Error(result.error.message || "The card was declined.");
        }
        form.querySelector("input[name=setup_intent]").value = result.setupIntent.id;
        form.submit();
      } catch (error) {
        errors.textContent = error.message;
        button.disabled = false;
      }
    });
  }

  // A payment the bank asks to confirm (3-D Secure): Stripe.js shows the bank's step, then the
  // page reloads and the portal asks Stripe how it ended.
  function authenticateButton(button) {
    const errors = document.querySelector("#card-errors");
    const stripe = stripeOrError(button.dataset.publishableKey, errors);
    if (!stripe) {
      return;
    }
    button.addEventListener("click", async function () {
      button.disabled = true;
      const result = await stripe.confirmCardPayment(button.dataset.clientSecret);
      if (result.error) {
        errors.textContent = result.error.message || "The bank did not confirm the payment.";
      }
      window.location.reload();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.querySelector("#card-form");
    if (form) {
      cardForm(form);
    }
    const button = document.querySelector("#authenticate");
    if (button) {
      authenticateButton(button);
    }
  });
})();
