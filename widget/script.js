// kommo-unisender widget: hands the Unisender API key (and list) to the
// kommo-unisender webhook server, and shows whether the sync works.
//
// Every server call goes through self.$authorizedAjax, so Kommo signs a
// one-time JWT (X-Auth-Token) with the integration's client secret; the
// server trusts nothing else. The key itself is sent only in the request
// body, never in a URL, and never written to the page or the console.
define(['jquery'], function ($) {
  'use strict';

  var ROOT_ID = 'kus-widget-settings';

  return function () {
    var self = this;

    // t looks a "section.key" phrase up in the widget's i18n file. Keys are
    // always string literals so that the structure test can find them.
    function t(path) {
      var parts = path.split('.');
      var section = self.i18n(parts[0]) || {};
      var phrase = section[parts[1]];
      return typeof phrase === 'string' ? phrase : path;
    }

    function root() {
      return $('#' + ROOT_ID);
    }

    // serverURL normalises the configured server address: https only,
    // except for loopback hosts used during development.
    function serverURL(raw) {
      var value = $.trim(raw || '').replace(/\/+$/, '');
      var m = /^(https?):\/\/([^\/?#]+)(\/[^?#]*)?$/i.exec(value);
      if (!m) {
        return null;
      }
      var host = m[2].replace(/:\d+$/, '').toLowerCase();
      var loopback = host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
      if (m[1].toLowerCase() !== 'https' && !loopback) {
        return null;
      }
      return value;
    }

    function showMessage(state, text) {
      root().find('.kus-widget-message')
        .attr('data-state', state)
        .text(text);
    }

    // errorText explains a failed call to the admin: a localized phrase for
    // the status code, followed by the server's own reason when it gave one.
    function errorText(xhr) {
      var status = xhr && xhr.status;
      var phrase;
      if (status === 401) {
        phrase = t('messages.unauthorized');
      } else if (status === 403) {
        phrase = t('messages.forbidden');
      } else if (status === 404) {
        phrase = t('messages.not_found');
      } else if (!status) {
        phrase = t('messages.unreachable');
      } else {
        phrase = t('messages.failed');
      }
      var reason = serverReason(xhr);
      return reason ? phrase + ' (' + reason + ')' : phrase;
    }

    function serverReason(xhr) {
      if (!xhr) {
        return '';
      }
      var body = xhr.responseJSON;
      if (body && typeof body.error === 'string') {
        return body.error;
      }
      if (typeof xhr.responseText === 'string') {
        return $.trim(xhr.responseText).slice(0, 200);
      }
      return '';
    }

    // call runs an authorized request and always resolves the returned
    // promise with {ok, data, xhr}, whatever promise flavour the host uses.
    function call(url, method, body) {
      var d = $.Deferred();
      var req = {
        url: url,
        method: method,
        type: method,
        dataType: 'json'
      };
      if (body !== undefined) {
        req.data = JSON.stringify(body);
        req.contentType = 'application/json';
      }
      var p;
      try {
        p = self.$authorizedAjax(req);
      } catch (e) {
        d.resolve({ ok: false, xhr: null });
        return d.promise();
      }
      $.when(p).then(
        function (data) { d.resolve({ ok: true, data: data }); },
        function (xhr) { d.resolve({ ok: false, xhr: xhr }); }
      );
      return d.promise();
    }

    function row(label, value) {
      return $('<div class="kus-widget-status-row"></div>')
        .append($('<span class="kus-widget-status-label"></span>').text(label + ': '))
        .append($('<span class="kus-widget-status-value"></span>').text(value));
    }

    function listText(s) {
      if (s.listTitle && s.listID) {
        return s.listTitle + ' (#' + s.listID + ')';
      }
      return s.listTitle || (s.listID ? '#' + s.listID : t('status.none'));
    }

    function importText(s) {
      var imp = s['import'] || {};
      if (imp.completed) {
        return t('status.import_done');
      }
      if (imp.total) {
        return (imp.imported || 0) + ' / ' + imp.total;
      }
      if (imp.imported) {
        // Kommo does not count contacts up front: the total may be unknown.
        return String(imp.imported);
      }
      return t('status.import_pending');
    }

    function renderStatus(s) {
      var box = root().find('.kus-widget-status').empty().attr('data-loaded', 'true');
      box.append($('<div class="kus-widget-status-title"></div>').text(t('status.title')));
      box.append(row(t('status.connection'), s.connected ? t('status.connected') : t('status.disconnected')));
      box.append(row(t('status.list'), listText(s)));
      box.append(row(t('status.import'), importText(s)));
      box.append(row(t('status.last_error'), s.lastError || t('status.none')));
    }

    function loadStatus(base) {
      var box = root().find('.kus-widget-status');
      box.attr('data-loaded', 'false').text(t('status.loading'));
      return call(base + '/widget/status', 'GET').then(function (res) {
        if (res.ok) {
          renderStatus(res.data || {});
        } else {
          box.attr('data-loaded', 'error').text(t('status.unavailable') + ': ' + errorText(res.xhr));
        }
      });
    }

    function saveKey(fields) {
      var base = serverURL(fields.server_url);
      if (!base) {
        showMessage('error', t('messages.bad_server_url'));
        return;
      }
      var apiKey = $.trim(fields.api_key || '');
      if (!apiKey) {
        showMessage('error', t('messages.key_required'));
        return;
      }
      var body = { apiKey: apiKey };
      var listTitle = $.trim(fields.list_title || '');
      if (listTitle) {
        body.listTitle = listTitle;
      }
      showMessage('pending', t('messages.saving'));
      call(base + '/widget', 'POST', body).then(function (res) {
        if (res.ok) {
          showMessage('success', t('messages.saved'));
          loadStatus(base);
        } else {
          showMessage('error', errorText(res.xhr));
        }
      });
    }

    // settingsFields reads what the admin entered: Kommo passes the form to
    // onSave; get_settings() holds the last saved values.
    function settingsFields(data) {
      var saved = self.get_settings() || {};
      var fields = (data && data.fields) || {};
      return {
        server_url: fields.server_url !== undefined ? fields.server_url : saved.server_url,
        api_key: fields.api_key !== undefined ? fields.api_key : saved.api_key,
        list_title: fields.list_title !== undefined ? fields.list_title : saved.list_title
      };
    }

    this.callbacks = {
      render: function () {
        return true;
      },
      init: function () {
        return true;
      },
      bind_actions: function () {
        return true;
      },
      settings: function ($modal_body) {
        var $body = $modal_body && $modal_body.length ? $modal_body : $(document.body);
        root().remove();
        var $root = $('<div class="kus-widget"></div>').attr('id', ROOT_ID);
        $root.append($('<p class="kus-widget-hint"></p>').text(t('settings.hint')));
        $root.append('<div class="kus-widget-message" data-state="idle" role="status"></div>');
        $root.append('<div class="kus-widget-status" data-loaded="false"></div>');
        $body.append($root);
        var base = serverURL((self.get_settings() || {}).server_url);
        if (base) {
          loadStatus(base);
        } else {
          $root.find('.kus-widget-status').attr('data-loaded', 'unconfigured').text(t('status.not_configured'));
        }
        return true;
      },
      onSave: function (data) {
        if (self.system().area === 'settings') {
          saveKey(settingsFields(data));
        }
        return true;
      },
      destroy: function () {
        root().remove();
        return true;
      }
    };
    return this;
  };
});
